/**
 * The data of cluster.create as `cairn cluster create` builds it: the file's spec (YAML or
 * JSON), the flags over it, checked against the catalogue before anything is sent.
 */
import { readFile } from "node:fs/promises";
import { CreateCluster } from "@cairn/events";
import { parse as parseYaml } from "yaml";
import { InvalidInputError } from "../errors.ts";
import { parseInput } from "../validate.ts";

export interface CreateFlags {
  readonly name?: string;
  readonly region: string;
  readonly k3sVersion: string;
  readonly servers: string;
  readonly serverType: string;
  readonly pool: string[];
  readonly tag: string[];
  readonly file?: string;
}

const CREATE_NAMES: Record<string, string> = {
  clusterId: "cluster id",
  name: "--name",
  region: "--region",
  k3sVersion: "--k3s-version",
  "servers.count": "--servers",
  "servers.instanceType": "--server-type",
  tags: "--tag",
};

/**
 * A pool as `--pool` takes it: `name=count[:spot|on-demand[:type,type…]]`.
 * @example parsePool("workers=2:spot:t3.large,t3a.large") // { name: "workers", count: 2, capacityType: "spot", instanceTypes: ["t3.large", "t3a.large"] }
 */
export function parsePool(text: string) {
  const m = /^([^=]+)=(\d+)(?::([a-z-]+))?(?::([^:]+))?$/.exec(text);
  if (!m)
    throw new InvalidInputError(`invalid --pool ${JSON.stringify(text)} (nothing was sent)`, [
      "give name=count[:spot|on-demand[:type,type…]], e.g. workers=2:spot:t3.large,t3a.large",
    ]);
  return {
    name: m[1],
    count: Number(m[2]),
    capacityType: m[3] ?? "on-demand",
    instanceTypes: (m[4] ?? "t3.large").split(","),
  };
}

const keyValue = (flag: string) => (text: string) => {
  const i = text.indexOf("=");
  if (i <= 0) throw new InvalidInputError(`invalid ${flag} ${JSON.stringify(text)}: give key=value`);
  return [text.slice(0, i), text.slice(i + 1)] as const;
};

/** The cluster.create data from the file (if any) and the flags, checked against the catalogue. */
export async function clusterCreateData(id: string, o: CreateFlags, given: (flag: string) => boolean) {
  let file: Record<string, unknown> = {};
  if (o.file) {
    let text: string;
    try {
      text = await readFile(o.file, "utf8");
    } catch (err) {
      throw new InvalidInputError(
        `cannot read ${o.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
    const doc: unknown = parseYaml(text);
    if (typeof doc !== "object" || doc === null || Array.isArray(doc))
      throw new InvalidInputError(`${o.file} must hold an object: the cluster's spec as in cluster.create`);
    file = { ...doc };
  }
  // A flag overrides the file only when typed: its default must not hide the file's value.
  const pick = <T>(flag: string, value: T, fromFile: unknown) =>
    given(flag) || fromFile === undefined ? value : fromFile;
  const fileServers = (file.servers ?? {}) as { count?: unknown; instanceType?: unknown };
  const data = {
    ...file,
    clusterId: id,
    name: pick("name", o.name ?? id, file.name),
    region: pick("region", o.region, file.region),
    k3sVersion: pick("k3sVersion", o.k3sVersion, file.k3sVersion),
    servers: {
      count: pick("servers", Number(o.servers), fileServers.count),
      instanceType: pick("serverType", o.serverType, fileServers.instanceType),
    },
    pools: o.pool.length > 0 ? o.pool.map(parsePool) : Array.isArray(file.pools) ? file.pools : [],
    tags: {
      ...((file.tags as object | undefined) ?? {}),
      ...Object.fromEntries(o.tag.map(keyValue("--tag"))),
    },
  };
  const names = { ...CREATE_NAMES };
  data.pools.forEach((_, i) => {
    names[`pools.${i}.count`] = `--pool #${i + 1} count`;
    names[`pools.${i}.capacityType`] = `--pool #${i + 1} capacity type`;
    names[`pools.${i}.name`] = `--pool #${i + 1} name`;
  });
  return parseInput(CreateCluster.schema, data, "cluster", {
    names,
    hint: "`cairn cluster create --help` shows what each flag takes",
  });
}
