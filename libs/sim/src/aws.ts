import type { IncomingMessage } from "node:http";

/**
 * The region a request was signed for, from its SigV4 `Authorization` header
 * (`Credential=<key>/<date>/<region>/<service>/aws4_request`). The sim does not check
 * signatures; it keeps regions apart by this.
 */
export function signedRegion(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (!auth) return undefined;
  const m = /Credential=[^/]+\/\d{8}\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request/.exec(auth);
  return m?.[1];
}

/**
 * Which AWS protocol a request speaks: SSM (JSON 1.1) or SQS (JSON 1.0), both named by
 * their X-Amz-Target prefix, or EC2 (Query).
 */
export function awsProtocolOf(req: IncomingMessage): "ssm" | "sqs" | "ec2" | undefined {
  const target = req.headers["x-amz-target"];
  if (typeof target === "string" && target.startsWith("AmazonSSM.")) return "ssm";
  if (typeof target === "string" && target.startsWith("AmazonSQS.")) return "sqs";
  const ct = req.headers["content-type"] ?? "";
  if (req.method === "POST" && ct.includes("application/x-www-form-urlencoded")) return "ec2";
  return undefined;
}

/** A request id as AWS shapes them. */
export function requestId(random: { uuid(): string }): string {
  return random.uuid();
}

/** Escapes text for XML element content and attribute values. */
export function xmlEscape(s: string): string {
  return s
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&apos;");
}
