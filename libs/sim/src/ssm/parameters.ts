/**
 * Parameter Store, one per region: names, types, versions, tiers, and SecureString
 * encryption as a caller sees it (without decryption a SecureString reads as an opaque
 * KMS-like ciphertext, never the value).
 */

import { createHash } from "node:crypto";
import { SsmError, validation } from "./wire.ts";

export const PARAMETER_TYPES = ["String", "StringList", "SecureString"] as const;
export type ParameterType = (typeof PARAMETER_TYPES)[number];
export type ParameterTier = "Standard" | "Advanced";

/** The account the sim's ARNs and messages name. */
export const SIM_ACCOUNT_ID = "123456789012";

const STANDARD_MAX = 4096;
const ADVANCED_MAX = 8192;
const MAX_DEPTH = 15;
const MAX_NAME = 1011;
const NAME_RULES =
  'Parameter name: can\'t be prefixed with "aws" or "ssm" (case-insensitive). If formed as a path, it can consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_';

export interface StoredParameter {
  name: string;
  type: ParameterType;
  /** The plain value (also of a SecureString: the sim holds the key). */
  value: string;
  version: number;
  tier: ParameterTier;
  /** Sim epoch ms. */
  lastModified: number;
  keyId?: string;
  description?: string;
}

export interface PutInput {
  name: string;
  value: string;
  type?: string;
  overwrite?: boolean;
  tier?: string;
  keyId?: string;
  description?: string;
  hasTags?: boolean;
}

export class ParameterStore {
  readonly #regions = new Map<string, Map<string, StoredParameter>>();

  /** Every region's parameters (journal compaction; snapshot.ts encodes it). */
  snapshot(): unknown {
    return this.#regions;
  }

  /** Puts back what `snapshot` took (decoded), replacing everything. */
  restore(s: unknown): void {
    this.#regions.clear();
    for (const [region, m] of s as Map<string, Map<string, StoredParameter>>) this.#regions.set(region, m);
  }

  #region(region: string): Map<string, StoredParameter> {
    let m = this.#regions.get(region);
    if (!m) {
      m = new Map();
      this.#regions.set(region, m);
    }
    return m;
  }

  get(region: string, name: string): StoredParameter | undefined {
    return this.#regions.get(region)?.get(name);
  }

  /**
   * Creates or (with overwrite) replaces a parameter, as PutParameter does.
   * @throws SsmError ParameterAlreadyExists, ValidationException, HierarchyLevelLimitExceededException
   */
  put(region: string, input: PutInput, now: number): StoredParameter {
    validateName(input.name);
    if (input.value.length === 0) {
      throw validation(
        "1 validation error detected: Value '' at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1",
      );
    }
    if (input.hasTags && input.overwrite) {
      throw validation(
        "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.",
      );
    }
    if (input.type !== undefined && !(PARAMETER_TYPES as readonly string[]).includes(input.type)) {
      throw validation(
        `1 validation error detected: Value '${input.type}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]`,
      );
    }
    const params = this.#region(region);
    const existing = params.get(input.name);
    if (existing && !input.overwrite) {
      throw new SsmError(
        "ParameterAlreadyExists",
        "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
      );
    }
    const type = (input.type ?? existing?.type) as ParameterType | undefined;
    if (!type) throw validation("A parameter type is required when you create a parameter.");
    const tier = chooseTier(input.tier, input.value, existing?.tier);
    const stored: StoredParameter = {
      name: input.name,
      type,
      value: input.value,
      version: (existing?.version ?? 0) + 1,
      tier,
      lastModified: now,
      ...(type === "SecureString" ? { keyId: input.keyId ?? existing?.keyId ?? "alias/aws/ssm" } : {}),
      ...(input.description !== undefined
        ? { description: input.description }
        : existing?.description !== undefined
          ? { description: existing.description }
          : {}),
    };
    params.set(input.name, stored);
    return stored;
  }

  delete(region: string, name: string): boolean {
    return this.#regions.get(region)?.delete(name) ?? false;
  }

  names(region: string): string[] {
    return [...(this.#regions.get(region)?.keys() ?? [])].sort();
  }

  regions(): string[] {
    return [...this.#regions.keys()].sort();
  }
}

/** The parameter as GetParameter returns it; a SecureString read without decryption shows ciphertext. */
export function parameterJson(region: string, p: StoredParameter, decrypt: boolean): Record<string, unknown> {
  return {
    Name: p.name,
    Type: p.type,
    Value: p.type === "SecureString" && !decrypt ? ciphertext(region, p) : p.value,
    Version: p.version,
    LastModifiedDate: p.lastModified / 1000,
    ARN: parameterArn(region, p.name),
    DataType: "text",
  };
}

export function parameterArn(region: string, name: string): string {
  return `arn:aws:ssm:${region}:${SIM_ACCOUNT_ID}:parameter/${name.replace(/^\//, "")}`;
}

/**
 * A stand-in for a KMS ciphertext blob: base64 that starts like one (`AQICAH…`), as long
 * as a real one would be, derived from (region, name, version, value) so it is stable
 * and changes with every version, yet carries nothing of the value.
 */
export function ciphertext(region: string, p: StoredParameter): string {
  const want = 5 + 16 + 12 + 16 + 128 + Buffer.byteLength(p.value);
  const chunks: Buffer[] = [Buffer.from([0x01, 0x02, 0x02, 0x00, 0x78])];
  let have = 5;
  for (let i = 0; have < want; i++) {
    const h = createHash("sha256")
      .update(`${region}\0${p.name}\0${p.version}\0${i}\0`)
      .update(p.value)
      .digest();
    chunks.push(h);
    have += h.length;
  }
  return Buffer.concat(chunks).subarray(0, want).toString("base64");
}

function validateName(name: string): void {
  if (name.length === 0 || name.length > MAX_NAME) {
    throw validation(`Parameter name must be 1 to ${MAX_NAME} characters long.`);
  }
  if (!/^[a-zA-Z0-9_.\-/]+$/.test(name)) throw validation(NAME_RULES);
  if (name.includes("/") && !name.startsWith("/"))
    throw validation("Parameter name must be a fully qualified name.");
  if (/^\/?(aws|ssm)/i.test(name)) throw validation(NAME_RULES);
  if (name.split("/").some((part, i) => i > 0 && part === "")) throw validation(NAME_RULES);
  if (name.split("/").length - 1 > MAX_DEPTH) {
    throw new SsmError(
      "HierarchyLevelLimitExceededException",
      `Parameter name ${name} has more than ${MAX_DEPTH} levels of hierarchy.`,
    );
  }
}

function chooseTier(
  asked: string | undefined,
  value: string,
  existing: ParameterTier | undefined,
): ParameterTier {
  const fits = value.length <= STANDARD_MAX;
  if (asked === undefined || asked === "Standard") {
    if (asked === "Standard" && existing === "Advanced") {
      throw validation(
        "This parameter uses the advanced-parameter tier. You can't downgrade a parameter from the advanced-parameter tier to the standard-parameter tier.",
      );
    }
    const tier = existing ?? "Standard";
    if (tier === "Standard" && !fits) {
      throw validation(
        `Standard tier parameters support a maximum parameter value of ${STANDARD_MAX} characters. To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier. For more information, see https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html`,
      );
    }
    if (tier === "Advanced" && value.length > ADVANCED_MAX) throw tooLong();
    return tier;
  }
  if (asked === "Advanced" || asked === "Intelligent-Tiering") {
    if (value.length > ADVANCED_MAX) throw tooLong();
    return asked === "Advanced" || !fits || existing === "Advanced" ? "Advanced" : "Standard";
  }
  throw validation(
    `1 validation error detected: Value '${asked}' at 'tier' failed to satisfy constraint: Member must satisfy enum value set: [Advanced, Intelligent-Tiering, Standard]`,
  );
}

function tooLong(): SsmError {
  return validation(
    `1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length less than or equal to ${ADVANCED_MAX}`,
  );
}
