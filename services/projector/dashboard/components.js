// Pieces every page uses: state badges, progress bars, failures, conditions, command
// buttons and the confirmation dialog.
import htm from "htm";
import { h } from "preact";
import { useEffect, useId, useRef, useState } from "preact/hooks";
import { call } from "./api.js";
import { duration, when } from "./format.js";
import { trackCommand, useStore } from "./store.js";

export const html = htm.bind(h);

/** How a state reads: its tone (colour, always with the word itself) by what it means. */
const TONES = {
  Healthy: "ok",
  Progressing: "busy",
  Unknown: "idle",
  Ready: "ok",
  Running: "ok",
  Success: "ok",
  done: "ok",
  ready: "ok",
  True: "ok",
  Failed: "bad",
  failed: "bad",
  TimedOut: "bad",
  Degraded: "warn",
  Recovering: "warn",
  "not-ready": "warn",
  waiting: "warn",
  Hibernated: "idle",
  Hibernating: "idle",
  Terminated: "idle",
  Deleted: "idle",
  terminated: "idle",
  False: "warn",
};

export function StateBadge({ state, label }) {
  const tone = TONES[state] ?? (state ? "busy" : "idle");
  return html`<span class=${`badge badge-${tone}`} data-state=${state}>${label ?? state ?? "—"}</span>`;
}

/**
 * Step X/Y, percent and ETA as a bar and as words. `progress` is the API's cluster (or
 * install) progress: { operation, done, total, percent, step, eta?, etaSeconds? }.
 */
export function ProgressBar({ progress, label, now }) {
  if (!progress) return html`<span class="muted">—</span>`;
  const pct = Math.max(0, Math.min(100, progress.percent ?? 0));
  const eta =
    progress.eta && now !== undefined
      ? Math.max(0, Date.parse(progress.eta) - now)
      : progress.etaSeconds !== null && progress.etaSeconds !== undefined
        ? progress.etaSeconds * 1000
        : undefined;
  const words = [
    progress.total ? `step ${progress.done}/${progress.total}` : undefined,
    `${pct} %`,
    eta !== undefined ? `ETA ${duration(eta)}` : undefined,
  ]
    .filter(Boolean)
    .join(" · ");
  return html`<div class="progress">
    <div
      class="bar"
      role="progressbar"
      aria-label=${label}
      aria-valuemin="0"
      aria-valuemax="100"
      aria-valuenow=${pct}
      aria-valuetext=${`${words}${progress.step ? `: ${progress.step}` : ""}`}
    >
      <div class="fill" style=${`width:${pct}%`}></div>
    </div>
    <div class="progress-words"><span class="progress-numbers">${words}</span>${progress.step ? html` <span class="muted">${progress.step}</span>` : null}</div>
  </div>`;
}

/** Why something failed and what would fix it. */
export function Failure({ failure, title = "Why it failed" }) {
  if (!failure) return null;
  return html`<div class="failure" role="note" aria-label=${title}>
    <p><strong>${title}:</strong> <span class="failure-reason">${failure.reason}</span>${failure.code ? html` <span class="muted small">(${failure.code}${failure.since ? `, ${when(failure.since)}` : ""})</span>` : null}</p>
    ${failure.remediation ? html`<p><strong>What to do:</strong> <span class="failure-remediation">${failure.remediation}</span></p>` : null}
  </div>`;
}

/** Conditions whose True is bad news (Kubernetes' "abnormal-true" polarity, as a node's *Pressure). */
const TRUE_IS_BAD = new Set(["Degraded", "Failed", "Deleting", "Stalled"]);

/** Whether a condition is as it should be: Ready True, Degraded False. */
export const conditionOk = (c) => (TRUE_IS_BAD.has(c.type) ? c.status === "False" : c.status === "True");

function ConditionBadge({ c, label }) {
  const tone =
    c.status === "Unknown" ? "idle" : conditionOk(c) ? "ok" : TRUE_IS_BAD.has(c.type) ? "bad" : "warn";
  return html`<span class=${`badge badge-${tone}`} data-condition=${c.type}>${label ?? c.status}</span>`;
}

/**
 * Kubernetes-style conditions: type, status, reason, message, last transition. Compact (a
 * list's cell): only those not as they should be, each with its reason in a title.
 */
export function Conditions({ conditions, compact }) {
  if (!Array.isArray(conditions) || conditions.length === 0) return null;
  if (compact) {
    const off = conditions.filter((c) => c.status !== "Unknown" && !conditionOk(c));
    if (off.length === 0) return null;
    return html`<ul class="chips" aria-label="Conditions not as they should be">
      ${off.map(
        (c) =>
          html`<li title=${[c.reason, c.message].filter(Boolean).join(": ")}><${ConditionBadge} c=${c} label=${`${c.type}: ${c.status}`} /></li>`,
      )}
    </ul>`;
  }
  return html`<table class="conditions">
    <caption>Conditions</caption>
    <thead><tr><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Reason</th><th scope="col">Message</th><th scope="col">Since</th></tr></thead>
    <tbody>
      ${conditions.map(
        (c) => html`<tr>
          <th scope="row">${c.type}</th>
          <td><${ConditionBadge} c=${c} /></td>
          <td>${c.reason ?? "—"}</td>
          <td>${c.message ?? "—"}</td>
          <td>${when(c.lastTransitionTime ?? c.lastTransition ?? c.since)}</td>
        </tr>`,
      )}
    </tbody>
  </table>`;
}

/** The cluster's health as the API says it, whatever its shape (a word, or an object with one). */
export function healthWord(health) {
  if (!health) return undefined;
  if (typeof health === "string") return health;
  return health.status ?? health.state ?? undefined;
}

/**
 * Sends a command through an API route and tracks it: the notices show that it was sent,
 * then whether the owning service accepted or refused it (from the live stream).
 * @returns true when the API took it (202).
 */
export async function sendCommand({ label, method, path, body }) {
  const at = Date.now();
  try {
    const answer = await call(method, path, body);
    trackCommand(answer.commandId, { label, at });
    return true;
  } catch (err) {
    const id = `local-${at}-${Math.random().toString(36).slice(2)}`;
    trackCommand(id, { label, at, status: "refused", reason: err.message });
    return false;
  }
}

/** A button that sends one command; `data-command` names it (for people reading the DOM, and tests). */
export function CommandButton({ command, label, title, send, disabled, danger }) {
  const [busy, setBusy] = useState(false);
  return html`<button
    type="button"
    class=${danger ? "danger" : undefined}
    data-command=${command}
    title=${title}
    disabled=${disabled || busy}
    onClick=${async () => {
      setBusy(true);
      try {
        await send();
      } finally {
        setBusy(false);
      }
    }}
  >
    ${label}
  </button>`;
}

/**
 * A modal question before a command that cannot be undone. A native <dialog>: focus stays
 * inside and starts on Cancel (the safe answer), Escape cancels.
 */
export function Confirm({ open, title, children, confirmLabel, onConfirm, onCancel }) {
  const ref = useRef(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return html`<dialog ref=${ref} aria-labelledby=${titleId} onCancel=${(e) => {
    e.preventDefault();
    onCancel();
  }}>
    <form method="dialog" onSubmit=${(e) => {
      e.preventDefault();
      onConfirm();
    }}>
      <h2 id=${titleId}>${title}</h2>
      ${children}
      <div class="actions">
        <button type="button" autofocus onClick=${onCancel}>Cancel</button>
        <button type="submit" class="danger" data-confirm>${confirmLabel}</button>
      </div>
    </form>
  </dialog>`;
}

const ACCEPTED_SHOWN_MS = 6_000;

/** The command notices: what was sent, then accepted or refused (with the reason). */
export function Notices() {
  const now = useNow(2000);
  const commands = useStore((s) => [...s.commands.values()].filter((c) => c.mine));
  const [dismissed, setDismissed] = useState(new Set());
  // An accepted command's notice goes by itself; a refusal stays until dismissed.
  const shown = commands
    .filter((c) => !dismissed.has(c.commandId))
    .filter((c) => c.status !== "accepted" || now - (c.settledAt ?? now) < ACCEPTED_SHOWN_MS)
    .slice(-3);
  return html`<section class="notices" aria-label="Commands sent" aria-live="polite">
    ${shown.map((c) => {
      const status = c.status ?? "sent";
      const tone = status === "accepted" ? "ok" : status === "sent" ? "busy" : "bad";
      return html`<div class=${`notice notice-${tone}`} data-command-status=${status}>
        <span><strong>${c.label}</strong>: ${
          status === "sent"
            ? "sent, waiting for the owning service"
            : status === "accepted"
              ? "accepted"
              : `${status === "refused" ? "refused by the API" : "rejected"}: ${c.reason ?? ""}`
        }</span>
        <button type="button" class="link" aria-label=${`Dismiss the notice about ${c.label}`} onClick=${() => setDismissed(new Set([...dismissed, c.commandId]))}>×</button>
      </div>`;
    })}
  </section>`;
}

/** A ticking clock for countdowns and "ago"s. */
export function useNow(everyMs = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}
