/**
 * Kubernetes `Status` errors, shaped exactly like kube-apiserver's (k8s.io/apimachinery
 * `errors.New*`): message, reason, details and code.
 */

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

/** A failure the API answers with a Status object. */
export class KubeError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details: StatusDetails | undefined;
  readonly headers: Record<string, string>;

  constructor(
    code: number,
    reason: string,
    message: string,
    details?: StatusDetails,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.details = details;
    this.headers = headers;
  }

  toStatus(): Status {
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

/** What an error names: the resource (`nodes`, `deployments.apps`) and its kind. */
export interface Named {
  /** Plural resource name. */
  resource: string;
  /** API group; "" for the core group. */
  group: string;
  kind: string;
}

const qualifiedResource = (r: Named) => (r.group ? `${r.resource}.${r.group}` : r.resource);
const qualifiedKind = (r: Named) => (r.group ? `${r.kind}.${r.group}` : r.kind);
const groupDetails = (r: Named) => (r.group ? { group: r.group } : {});

export function notFound(r: Named, name: string): KubeError {
  return new KubeError(404, "NotFound", `${qualifiedResource(r)} "${name}" not found`, {
    name,
    ...groupDetails(r),
    kind: r.resource,
  });
}

export function alreadyExists(r: Named, name: string): KubeError {
  return new KubeError(409, "AlreadyExists", `${qualifiedResource(r)} "${name}" already exists`, {
    name,
    ...groupDetails(r),
    kind: r.resource,
  });
}

export function conflict(
  r: Named,
  name: string,
  why = "the object has been modified; please apply your changes to the latest version and try again",
): KubeError {
  return new KubeError(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualifiedResource(r)} "${name}": ${why}`,
    {
      name,
      ...groupDetails(r),
      kind: r.resource,
    },
  );
}

export interface FieldError {
  /** FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, FieldValueDuplicate, FieldValueForbidden. */
  type:
    | "FieldValueInvalid"
    | "FieldValueRequired"
    | "FieldValueNotSupported"
    | "FieldValueDuplicate"
    | "FieldValueForbidden";
  field: string;
  /** The text after `<field>: ` (e.g. `Invalid value: "x": must be ...`). */
  detail: string;
}

export function invalid(r: Named, name: string, errors: FieldError[]): KubeError {
  const parts = errors.map((e) => `${e.field}: ${e.detail}`);
  const summary = parts.length === 1 ? parts[0]! : `[${parts.join(", ")}]`;
  return new KubeError(422, "Invalid", `${qualifiedKind(r)} "${name}" is invalid: ${summary}`, {
    name,
    ...groupDetails(r),
    kind: r.kind,
    causes: errors.map((e) => ({ reason: e.type, message: e.detail, field: e.field })),
  });
}

export function badRequest(message: string): KubeError {
  return new KubeError(400, "BadRequest", message);
}

export function forbidden(r: Named, name: string, why: string): KubeError {
  return new KubeError(403, "Forbidden", `${qualifiedResource(r)} "${name}" is forbidden: ${why}`, {
    name,
    ...groupDetails(r),
    kind: r.resource,
  });
}

export function methodNotAllowed(): KubeError {
  return new KubeError(
    405,
    "MethodNotAllowed",
    "the server does not allow this method on the requested resource",
    {},
  );
}

export function noSuchRoute(): KubeError {
  return new KubeError(404, "NotFound", "the server could not find the requested resource", {});
}

export function unsupportedMediaType(accepted: readonly string[]): KubeError {
  return new KubeError(
    415,
    "UnsupportedMediaType",
    `the body of the request was in an unknown format - accepted media types include: ${accepted.join(", ")}`,
    {},
  );
}

export function unauthorized(): KubeError {
  return new KubeError(401, "Unauthorized", "Unauthorized");
}

export function tooManyRequests(retryAfterSeconds = 1): KubeError {
  return new KubeError(
    429,
    "TooManyRequests",
    "Too many requests, please try again later.",
    { retryAfterSeconds },
    { "Retry-After": String(retryAfterSeconds) },
  );
}

export function serviceUnavailable(): KubeError {
  return new KubeError(503, "ServiceUnavailable", "the server is currently unable to handle the request", {});
}

export function internalError(cause: string): KubeError {
  return new KubeError(500, "InternalError", `Internal error occurred: ${cause}`, {
    causes: [{ message: cause }],
  });
}

export function expired(message: string): KubeError {
  return new KubeError(410, "Expired", message);
}

export function success(details?: StatusDetails, code?: number): Record<string, unknown> {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Success",
    ...(details ? { details } : {}),
    ...(code ? { code } : {}),
  };
}
