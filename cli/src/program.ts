/**
 * The `cairn` command tree (commander), built without running it: main.ts runs it, the
 * tests walk it. Commands that start or reach heavy parts (`up`, `replay`, `token`)
 * import them when run, so `cairn session get` starts quickly.
 */
import { readFile } from "node:fs/promises";
import { Command, Option } from "commander";
import { type ApiClient, isApiError } from "./api-client.ts";
import { clusterCommand, watchCluster } from "./commands/cluster.ts";
import { eventsCommand, traceCommand } from "./commands/events.ts";
import { examples } from "./commands/help.ts";
import { nodeCommand } from "./commands/node.ts";
import { sessionCommand } from "./commands/session.ts";
import { completionScript } from "./completion.ts";
import { contextOf } from "./context.ts";
import { parseDuration } from "./durations.ts";
import { InvalidInputError, notFoundAs, OutcomeError } from "./errors.ts";
import { formatValue, type OutputFormat, outputOption } from "./output.ts";

const print = (v: unknown) => process.stdout.write(formatValue(v, "json"));

export function buildProgram(): Command {
  const program = new Command()
    .name("cairn")
    .description(
      "Cairn: an event-sourced control plane for K3s clusters on AWS and the user sessions on them",
    )
    .addOption(
      new Option(
        "--api-url <url>",
        "the Cairn API (default: CAIRN_API_URL, the config file, or the local run)",
      ),
    )
    .addOption(new Option("--token <token>", "bearer token (default: CAIRN_TOKEN, or the config file)"))
    .addOption(
      new Option(
        "--config <path>",
        "config file with apiUrl and token (default: CAIRN_CONFIG, else ~/.config/cairn/config.yaml)",
      ),
    )
    .showHelpAfterError("(add --help for usage and examples)")
    .addHelpText(
      "after",
      `${examples([
        "npm start                                   # run Cairn on this machine (another terminal)",
        "cairn demo                                  # create the example cluster and follow it",
        "cairn session create --cluster demo-1 --image ghcr.io/acme/ide:1 --wait",
        "cairn session list -o wide",
      ])}
Configuration: flags, else CAIRN_API_URL / CAIRN_TOKEN, else the config file (apiUrl:, token:).
Exit codes: 0 done; 1 refused, failed, not found, timed out or invalid input.
`,
    );

  program.addCommand(clusterCommand());
  program.addCommand(nodeCommand());
  program.addCommand(sessionCommand());
  program.addCommand(eventsCommand());
  program.addCommand(traceCommand());

  program
    .command("completion")
    .description("print a shell completion script: commands, flags, output formats")
    .argument("<shell>", "bash or zsh")
    .addHelpText(
      "after",
      examples([
        "cairn completion bash > /etc/bash_completion.d/cairn",
        'eval "$(cairn completion bash)"              # in ~/.bashrc',
        'eval "$(cairn completion zsh)"               # in ~/.zshrc',
      ]),
    )
    .action((shell: string) => {
      if (shell !== "bash" && shell !== "zsh")
        throw new InvalidInputError(`no completion for ${JSON.stringify(shell)}: bash or zsh`);
      process.stdout.write(completionScript(program, shell));
    });

  program
    .command("up")
    .description("run the whole control plane on this machine (NATS, Postgres, the five services, the API)")
    .addHelpText("after", examples(["cairn up", "CAIRN_SIM_TIME_SCALE=10 cairn up"]))
    .action(async () => (await import("./up.ts")).up());

  program
    .command("stack")
    .description(
      "run the production shape on this machine: a 3-node NATS cluster (R3 streams), two processes of every service, each as its own NATS user",
    )
    .option("--replicas <n>", "processes per service", "2")
    .option("--nats-nodes <n>", "NATS servers in the cluster", "3")
    .addHelpText("after", examples(["cairn stack", "npm run stack", "cairn stack --replicas 3"]))
    .action(async (o: { replicas: string; natsNodes: string }) => {
      const replicas = Number(o.replicas);
      const natsNodes = Number(o.natsNodes);
      if (!Number.isInteger(replicas) || replicas < 1)
        throw new InvalidInputError(`invalid --replicas ${JSON.stringify(o.replicas)}: 1 or more`);
      if (!Number.isInteger(natsNodes) || natsNodes < 1)
        throw new InvalidInputError(`invalid --nats-nodes ${JSON.stringify(o.natsNodes)}: 1 or more`);
      await (await import("./stack/stack.ts")).stack({ replicas, natsNodes });
    });

  program
    .command("send")
    .description("publish any command through the API (POST /commands)")
    .argument("<type>", "command type, e.g. cluster.create")
    .argument("[data]", "the command's data as JSON (or use --file)")
    .option("-f, --file <path>", "read the data from a JSON file")
    .option("--id <uuid>", "command id (a retry with the same id changes nothing)")
    .option("--actor <name>", "who is acting", process.env.USER ?? "cli")
    .option("-w, --wait", "wait until the command is accepted or rejected")
    .addHelpText(
      "after",
      examples([
        `cairn send cluster.delete '{"clusterId":"demo-1"}'`,
        "cairn send cluster.create -f cluster.json --wait",
      ]),
    )
    .action(
      async (
        type: string,
        data: string | undefined,
        o: { file?: string; id?: string; actor: string; wait?: boolean },
        cmd: Command,
      ) => {
        const raw = o.file ? await readFile(o.file, "utf8") : data;
        if (!raw) throw new InvalidInputError("give the command's data as an argument or with --file");
        let parsed: unknown;
        try {
          parsed = JSON.parse(raw);
        } catch (err) {
          throw new InvalidInputError(
            `the command's data is not JSON (nothing was sent): ${(err as Error).message}`,
          );
        }
        const { api } = contextOf(cmd);
        const sent = await api.post<{ commandId: string; traceId?: string }>("/commands", {
          ...(o.id ? { id: o.id } : {}),
          type,
          data: parsed,
          meta: { actor: o.actor },
        });
        print(sent);
        if (!o.wait) return;
        const outcome = await waitForCommand(api, sent.commandId);
        print(outcome);
        if ((outcome as { status?: string }).status === "rejected")
          throw new OutcomeError(
            `${type} refused: ${(outcome as { reason?: string }).reason ?? "no reason"}`,
          );
      },
    );

  program
    .command("command")
    .description("show what became of a command")
    .argument("<id>")
    .addHelpText("after", examples(["cairn command 0193a0c2-5b6e-7c1d-8e9f-0a1b2c3d4e5f"]))
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const { api } = contextOf(cmd);
      print(await api.get(`/commands/${encodeURIComponent(id)}`).catch(notFoundAs("command", id)));
    });

  program
    .command("replay")
    .description(
      "rebuild every read model from the event log into a fresh schema and swap it in (the API keeps serving); prints the comparison with the live models",
    )
    .option("--check-only", "build and compare with live, do not swap (exit 2 when they differ)")
    .option("--keep-old", "keep the previous live schema as <schema>_old_<n> after the swap")
    .option("--timeout <duration>", "how long to wait for the projector's answer", "1800")
    .addHelpText("after", examples(["cairn replay --check-only", "cairn replay --keep-old"]))
    .action(async (o: { checkOnly?: boolean; keepOld?: boolean; timeout: string }) => {
      const timeoutMs = parseDuration(o.timeout, "--timeout") * 1000;
      const { requestReplay } = await import("./replay.ts");
      const reply = await requestReplay({ checkOnly: !!o.checkOnly, keepOld: !!o.keepOld }, { timeoutMs });
      print(reply);
      if (!reply.ok) process.exit(1);
      const c = reply.result.comparison;
      if (o.checkOnly && (!c.compared || !c.equal)) process.exit(2);
    });

  program
    .command("install")
    .description("a cluster's install: its steps with their SSM command ids, attempts, durations and output")
    .argument("<clusterId>")
    .addHelpText("after", examples(["cairn install demo-1"]))
    .action(async (clusterId: string, _o: unknown, cmd: Command) => {
      const { api } = contextOf(cmd);
      print(
        await api
          .get(`/installs/${encodeURIComponent(clusterId)}`)
          .catch(notFoundAs("install of cluster", clusterId)),
      );
    });

  program
    .command("demo")
    .description(
      "Cairn end to end: boots the stack on the simulated cloud (or uses the running one), creates a cluster and sessions, lets one idle into hibernation and wakes it, then prints where to look",
    )
    .option("--sessions <n>", "sessions to create (1 to 5)", "3")
    .option("--idle-timeout <duration>", "the idle timeout of the session left to idle", "5s")
    .option(
      "--exit",
      "stop what the demo started once the summary is printed (default: keep it until Ctrl-C)",
    )
    .option("--timeout <duration>", "each wait gives up after this long", "10m")
    .addHelpText(
      "after",
      `${examples([
        "npm run demo                                # or: npx cairn demo",
        "CAIRN_SIM_TIME_SCALE=100 cairn demo --exit  # faster, and stop afterwards",
        "cairn demo --sessions 5 --idle-timeout 10s",
      ])}
With no Cairn answering at the API's address, the demo starts one as \`cairn up\` does (its services'
logs in <CAIRN_DATA_DIR>/logs/demo.log), with CAIRN_SIM_TIME_SCALE=10, CAIRN_SESSION_SWEEP_SECONDS=1 and
CAIRN_SESSION_IDLE_GRACE_SECONDS=1 unless set; Ctrl-C stops everything it started.
`,
    )
    .action(
      async (o: { sessions: string; idleTimeout: string; exit?: boolean; timeout: string }, cmd: Command) => {
        const sessions = Number(o.sessions);
        if (!Number.isInteger(sessions) || sessions < 1 || sessions > 5)
          throw new InvalidInputError(`invalid --sessions ${JSON.stringify(o.sessions)}: 1 to 5`);
        const idleTimeoutSeconds = parseDuration(o.idleTimeout, "--idle-timeout");
        const timeoutMs = parseDuration(o.timeout, "--timeout") * 1000;
        const { config, actor } = contextOf(cmd);
        const { demo } = await import("./demo.ts");
        await demo(config, actor, { sessions, idleTimeoutSeconds, exit: !!o.exit, timeoutMs });
      },
    );

  program
    .command("watch <clusterId>")
    .description("follow a cluster until it rests (Ready, Failed, Deleted): `cairn cluster watch`")
    .option("--timeout <duration>", "give up after this long", "900")
    .addOption(outputOption(null))
    .addHelpText("after", examples(["cairn watch demo-1", "cairn watch demo-1 --timeout 5m -o json"]))
    .action((id: string, o: { timeout: string; output?: OutputFormat }, cmd: Command) =>
      watchCluster(id, o, cmd),
    );

  program
    .command("token")
    .description("API bearer tokens (for CAIRN_TOKENS_FILE)")
    .command("create")
    .description("make a token: prints it once, and the entry to add to the tokens file")
    .requiredOption("--user <name>", "who holds it: the actor of the commands it sends")
    .requiredOption("--role <role>", "viewer (reads) | operator (reads and commands) | admin (everything)")
    .addHelpText("after", examples(["cairn token create --user alice --role operator"]))
    .action(async (o: { user: string; role: string }) => {
      const { tokenCreate } = await import("./token.ts");
      process.stdout.write(tokenCreate(o.user, o.role));
    });

  return program;
}

async function waitForCommand(api: ApiClient, id: string, timeoutMs = 30_000): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await api.get(`/commands/${encodeURIComponent(id)}`);
    } catch (err) {
      if (!isApiError(err, 404) || Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
