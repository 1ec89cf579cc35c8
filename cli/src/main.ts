#!/usr/bin/env node
// `cairn`: run Cairn locally, publish commands, read the read models.
import { readFile } from "node:fs/promises";
import { Command } from "commander";
import { ApiError, apiClient } from "./api-client.ts";
import { demoCluster } from "./demo.ts";
import { requestReplay } from "./replay.ts";
import { tokenCreate } from "./token.ts";
import { up } from "./up.ts";

const program = new Command()
  .name("cairn")
  .description("Cairn: an event-sourced control plane for K3s clusters on AWS and the user sessions on them")
  .showHelpAfterError();

program
  .command("up")
  .description("run the whole control plane on this machine (NATS, Postgres, the five services, the API)")
  .action(() => up());

program
  .command("send")
  .description('publish a command through the API, e.g. cairn send cluster.delete \'{"clusterId":"demo-1"}\'')
  .argument("<type>", "command type, e.g. cluster.create")
  .argument("[data]", "the command's data as JSON (or use --file)")
  .option("-f, --file <path>", "read the data from a JSON file")
  .option("--id <uuid>", "command id (a retry with the same id changes nothing)")
  .option("--actor <name>", "who is acting", process.env.USER ?? "cli")
  .option("-w, --wait", "wait until the command is accepted or rejected")
  .action(
    async (
      type: string,
      data: string | undefined,
      o: { file?: string; id?: string; actor: string; wait?: boolean },
    ) => {
      const raw = o.file ? await readFile(o.file, "utf8") : data;
      if (!raw) throw new Error("give the command's data as an argument or with --file");
      const api = apiClient();
      const sent = await api.post<{ commandId: string; traceId?: string }>("/commands", {
        ...(o.id ? { id: o.id } : {}),
        type,
        data: JSON.parse(raw),
        meta: { actor: o.actor },
      });
      print(sent);
      if (o.wait) print(await waitForCommand(sent.commandId));
    },
  );

program
  .command("clusters")
  .description("list clusters, or show one")
  .argument("[id]")
  .option("--at <sequence|time>", "show the cluster as it was then")
  .action(async (id: string | undefined, o: { at?: string }) => {
    const api = apiClient();
    print(
      await api.get(
        id
          ? `/clusters/${encodeURIComponent(id)}${o.at ? `?at=${encodeURIComponent(o.at)}` : ""}`
          : "/clusters",
      ),
    );
  });

program
  .command("command")
  .description("show what became of a command")
  .argument("<id>")
  .action(async (id: string) => print(await apiClient().get(`/commands/${encodeURIComponent(id)}`)));

program
  .command("replay")
  .description(
    "rebuild every read model from the event log into a fresh schema and swap it in (the API keeps serving); prints the comparison with the live models",
  )
  .option("--check-only", "build and compare with live, do not swap (exit 2 when they differ)")
  .option("--keep-old", "keep the previous live schema as <schema>_old_<n> after the swap")
  .option("--timeout <seconds>", "how long to wait for the projector's answer", "1800")
  .action(async (o: { checkOnly?: boolean; keepOld?: boolean; timeout: string }) => {
    const reply = await requestReplay(
      { checkOnly: !!o.checkOnly, keepOld: !!o.keepOld },
      { timeoutMs: Number(o.timeout) * 1000 },
    );
    print(reply);
    if (!reply.ok) process.exit(1);
    const c = reply.result.comparison;
    if (o.checkOnly && (!c.compared || !c.equal)) process.exit(2);
  });

program
  .command("nodes")
  .description("a cluster's nodes: pool, instance, K3s state, Ready, who cordoned them")
  .argument("<clusterId>")
  .action(async (clusterId: string) => {
    print(await apiClient().get(`/clusters/${encodeURIComponent(clusterId)}/nodes`));
  });

program
  .command("install")
  .description("a cluster's install: its steps with their SSM command ids, attempts, durations and output")
  .argument("<clusterId>")
  .action(async (clusterId: string) => {
    print(await apiClient().get(`/installs/${encodeURIComponent(clusterId)}`));
  });

program
  .command("demo")
  .description("create the design's example cluster on a running Cairn and follow it")
  .action(async () => {
    const api = apiClient();
    const clusterId = `demo-${Date.now().toString(36)}`;
    const sent = await api.post<{ commandId: string; traceId?: string }>("/commands", demoCluster(clusterId));
    process.stderr.write(
      `sent cluster.create ${clusterId}: command ${sent.commandId}, trace ${sent.traceId}\n`,
    );
    print(await waitForCommand(sent.commandId));
    print(await followCluster(clusterId));
  });

program
  .command("watch <clusterId>")
  .description("follow a cluster's state and progress until it rests (Ready, Failed, Deleted)")
  .option("--timeout <seconds>", "give up after this long", "900")
  .action(async (clusterId: string, o: { timeout: string }) => {
    const last = await followCluster(clusterId, Number(o.timeout) * 1000);
    print(last);
    if ((last as { state?: string }).state === "Failed") process.exit(1);
  });

program
  .command("token")
  .description("API bearer tokens (for CAIRN_TOKENS_FILE)")
  .command("create")
  .description("make a token: prints it once, and the entry to add to the tokens file")
  .requiredOption("--user <name>", "who holds it: the actor of the commands it sends")
  .requiredOption("--role <role>", "viewer (reads) | operator (reads and commands) | admin (everything)")
  .action((o: { user: string; role: string }) => {
    process.stdout.write(tokenCreate(o.user, o.role));
  });

/** States a cluster rests in: nothing happens until someone asks. */
const RESTING = new Set(["Ready", "Failed", "Deleted"]);

/** Prints each change of the cluster's state or progress until it rests; its last view. */
async function followCluster(clusterId: string, timeoutMs = 900_000): Promise<unknown> {
  const api = apiClient();
  const deadline = Date.now() + timeoutMs;
  let said = "";
  for (;;) {
    let view: { state?: string; progress?: { step?: string; percent?: number } } | undefined;
    try {
      view = await api.get(`/clusters/${encodeURIComponent(clusterId)}`);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    if (view) {
      const line = `${view.state}${view.progress?.step ? `  ${view.progress.step} (${view.progress.percent ?? 0}%)` : ""}`;
      if (line !== said)
        process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${clusterId}: ${line}\n`);
      said = line;
      if (view.state && RESTING.has(view.state)) return view;
    }
    if (Date.now() > deadline)
      throw new Error(
        `${clusterId} did not rest within ${Math.round(timeoutMs / 1000)} s (last: ${said || "not there"})`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function waitForCommand(id: string, timeoutMs = 30_000): Promise<unknown> {
  const api = apiClient();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await api.get(`/commands/${encodeURIComponent(id)}`);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404) || Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function print(v: unknown) {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

try {
  await program.parseAsync();
} catch (err) {
  process.stderr.write(`cairn: ${(err as Error).message}\n`);
  process.exit(1);
}
