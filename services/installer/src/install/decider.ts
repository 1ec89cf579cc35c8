/**
 * The install aggregate's pure core (one per cluster). No I/O, no clock: time arrives
 * in the context. `decide` is a dispatch to the concern that owns each command; a new
 * command type fails to compile until one does:
 *  - ./state.ts      the state, the policy, `evolve`;
 *  - ./lifecycle.ts  the plan and the removal;
 *  - ./steps.ts      init, join servers, join agents, verify (completion), deadlines;
 *  - ./health.ts     checks, Degraded / Recovering, the recovery ladder;
 *  - ./upgrade.ts    the rolling upgrade.
 */
import {
  assertNever,
  type Decider,
  type InstallCommand,
  type InstallEvent,
  isRejection,
} from "@cairn/events";
import { batchSteps } from "./batch.ts";
import { decideCheckRemediation, decideNodeState, decideRecordCheck } from "./health.ts";
import { decidePlan, decideRemove, decideSecretsRemoved } from "./lifecycle.ts";
import {
  after,
  DEFAULT_INSTALL_POLICY,
  evolveInstall,
  type InstallPolicy,
  type InstallState,
  initialInstallState,
} from "./state.ts";
import {
  decideAddNode,
  decideBatchSent,
  decideCheckDeadlines,
  decideInstancesReady,
  decideRecordKubeconfig,
  decideRecordOnline,
  decideRecordSecrets,
  decideRemoveNode,
  decideStepResult,
  decideStepSent,
} from "./steps.ts";
import { decideUpgrade, decideUpgradeProgress } from "./upgrade.ts";

// The installer's public surface keeps naming this module for the aggregate's types.
export {
  DEFAULT_INSTALL_POLICY,
  type FailingCheck,
  type InstallNode,
  type InstallPlan,
  type InstallPolicy,
  type InstallState,
  type InstallStatus,
  REMEDIATION_LADDER,
  type StepInFlight,
} from "./state.ts";

export function createInstallDecider(
  policy: InstallPolicy = DEFAULT_INSTALL_POLICY,
): Decider<InstallCommand, InstallEvent, InstallState> {
  type Decide = Decider<InstallCommand, InstallEvent, InstallState>["decide"];
  /** One command's events, before its agent joins are put into batches. */
  const decideOne: Decide = (command, state, ctx) => {
    switch (command.type) {
      case "install.record-many": {
        // Each record decided in order on what the ones before it left: the events of
        // as many commits as there are records, in one.
        let s = state;
        const out: InstallEvent[] = [];
        for (const r of command.data.records) {
          if (r.data.clusterId !== command.data.clusterId) continue;
          const events = decideOne({ ...command, ...r } as unknown as typeof command, s, {
            ...ctx,
            version: ctx.version + out.length,
          });
          if (isRejection(events) || events.length === 0) continue;
          out.push(...events);
          s = after(s, events);
        }
        return out;
      }
      case "install.plan":
        return decidePlan(command.data, state);
      case "install.remove":
        return decideRemove(state);
      case "install.record-secrets-removed":
        return decideSecretsRemoved(command.data, state);
      case "install.record-secrets":
        return decideRecordSecrets(command.data, state, policy);
      case "install.add-node":
        return decideAddNode(command.data, state, policy, ctx.now);
      case "install.remove-node":
        return decideRemoveNode(command.data, state, policy);
      case "install.record-online":
        return decideRecordOnline(command.data, state, policy);
      case "install.record-step-sent":
        return decideStepSent(command.data, state, policy);
      case "install.record-batch-sent":
        return decideBatchSent(command.data, state, policy);
      case "install.record-step-result":
        return decideStepResult(command.data, state, policy);
      case "install.record-kubeconfig":
        return decideRecordKubeconfig(command.data, state, policy);
      case "install.record-instances-ready":
        return decideInstancesReady(command.data, state, policy);
      case "install.check-deadlines":
        return decideCheckDeadlines(state, policy, ctx.now);
      case "install.record-node-state":
        return decideNodeState(command.data, state, policy);
      case "install.record-check":
        return decideRecordCheck(command.data, state, policy);
      case "install.check-remediation":
        return decideCheckRemediation(command.data, state, policy);
      case "install.upgrade":
        return decideUpgrade(command.data, state);
      case "install.record-upgrade-progress":
        return decideUpgradeProgress(command.data, state);
      default:
        return assertNever(command);
    }
  };
  return {
    aggregate: "install",
    initialState: initialInstallState,
    // The whole decision's agent joins (a group commit's, not each record's) are batched
    // together: nodes that came online in one commit join in one command.
    decide(command, state, ctx) {
      const events = decideOne(command, state, ctx);
      return isRejection(events) ? events : batchSteps(state, events, ctx.version);
    },
    evolve: evolveInstall,
  };
}
