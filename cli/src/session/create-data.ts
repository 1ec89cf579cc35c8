/**
 * The data of session.create as `cairn session create` builds it: the file's fields (YAML
 * or JSON), the flags over them, the template's defaults, checked against the catalogue
 * before anything is sent.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { CreateSession } from "@cairn/events";
import { parse as parseYaml } from "yaml";
import { parseDuration } from "../durations.ts";
import { InvalidInputError } from "../errors.ts";
import { parseInput } from "../validate.ts";

export interface CreateFlags {
  readonly cluster?: string;
  readonly image?: string;
  readonly cpu?: string;
  readonly memory?: string;
  readonly storage?: string;
  readonly user?: string;
  readonly idleTimeout?: string;
  readonly maxLifetime?: string;
  readonly file?: string;
}

/** The fields of session.create as the flags name them, for error messages. */
const CREATE_FLAG_NAMES: Readonly<Record<string, string>> = {
  sessionId: "session id",
  user: "--user",
  clusterId: "--cluster",
  "template.image": "--image",
  "template.cpu": "--cpu",
  "template.memory": "--memory",
  "template.storage": "--storage",
  idleTimeoutSeconds: "--idle-timeout",
  maxLifetimeSeconds: "--max-lifetime",
};

/** A fresh session id, kubectl's generateName style. @example generatedId("alice") // "alice-x7k2p" */
export function generatedId(prefix: string | undefined): string {
  const suffix = [...randomBytes(5)].map((b) => "bcdfghjklmnpqrstvwxz2456789"[b % 27]).join("");
  return `${prefix ?? "session"}-${suffix}`;
}

/** What `-f` holds: the data of session.create (YAML or JSON), any part of it. */
async function readCreateFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new InvalidInputError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new InvalidInputError(`${file} is not YAML or JSON: ${(err as Error).message.split("\n")[0]}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc))
    throw new InvalidInputError(`${file} must hold an object: the fields of session.create`);
  return { ...doc };
}

/**
 * The session.create data from the flags (over the file's), checked against the
 * catalogue. `user` is left to the API when a token speaks for the caller.
 */
export async function createData(
  id: string | undefined,
  o: CreateFlags,
  hasToken: boolean,
  env: NodeJS.ProcessEnv = process.env,
) {
  const file = o.file ? await readCreateFile(o.file) : {};
  const fileTemplate =
    typeof file.template === "object" && file.template !== null ? { ...file.template } : ({} as object);
  const seconds = (v: string | undefined, flag: string) =>
    v === undefined ? undefined : parseDuration(v, flag);
  const user = o.user ?? file.user ?? (hasToken ? undefined : env.USER);
  const data: Record<string, unknown> = {
    ...file,
    sessionId: id ?? file.sessionId ?? generatedId(typeof user === "string" ? user : undefined),
    ...(user !== undefined ? { user } : {}),
    clusterId: o.cluster ?? file.clusterId,
    template: {
      cpu: "1",
      memory: "2Gi",
      storage: "10Gi",
      ...fileTemplate,
      ...(o.image !== undefined ? { image: o.image } : {}),
      ...(o.cpu !== undefined ? { cpu: o.cpu } : {}),
      ...(o.memory !== undefined ? { memory: o.memory } : {}),
      ...(o.storage !== undefined ? { storage: o.storage } : {}),
    },
    ...(o.idleTimeout !== undefined ? { idleTimeoutSeconds: seconds(o.idleTimeout, "--idle-timeout") } : {}),
    ...(o.maxLifetime !== undefined ? { maxLifetimeSeconds: seconds(o.maxLifetime, "--max-lifetime") } : {}),
  };
  const missing = [
    data.clusterId === undefined && "--cluster <id> (the cluster it runs on)",
    (data.template as { image?: unknown }).image === undefined &&
      "--image <image> (the session's container image)",
    data.user === undefined && !hasToken && "--user <name> (whose session it is: no token says so)",
  ].filter((m): m is string => typeof m === "string");
  if (missing.length > 0)
    throw new InvalidInputError(
      "session.create needs more (nothing was sent)",
      missing.map((m) => `give ${m}`),
      {
        hint: "`cairn session create --help` has examples",
      },
    );
  // With a token the API fills in its holder as the user: check the rest as it will be.
  const checked = parseInput(CreateSession.schema, { user: "caller", ...data }, "session", {
    names: CREATE_FLAG_NAMES,
    hint: "`cairn session create --help` shows what each flag takes",
  });
  return data.user === undefined ? { ...checked, user: undefined } : checked;
}
