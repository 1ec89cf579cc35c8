/**
 * One trace per install (DESIGN §4). The runtime runs a reaction in the trace of the
 * message it reacts to; for a fact that is part of the install's lifecycle but was
 * recorded elsewhere (node-ops' watcher sees a node Ready on a trace of its own), that
 * would carry the install on "whichever trace arrives last". Such a reaction runs here
 * instead: in the install's lifecycle trace, with a span link to the fact's.
 */
import {
  contextFromTraceparent,
  eventSubject,
  inMessagingSpan,
  linkTo,
  type RawEventEnvelope,
  SpanAttributes,
  SpanKind,
  subjectTemplate,
  traceIdOf,
  traceparentOf,
} from "@cairn/events";

/**
 * Runs the reaction to `cause` in a span (`process evt.kube.{id}`) whose parent is the
 * install's lifecycle traceparent, linked to the span active now (the cause's): events
 * appended inside carry the lifecycle trace. With no lifecycle yet, or already in it,
 * `fn` runs as it is.
 *
 * @example await inLifecycleTrace(install.lifecycleTraceparent, kubeEvent, () => record(kubeEvent, …))
 */
export async function inLifecycleTrace<T>(
  lifecycle: string | undefined,
  cause: Pick<RawEventEnvelope, "id" | "type" | "aggregate">,
  fn: () => Promise<T>,
): Promise<T> {
  const active = traceparentOf();
  if (!lifecycle || traceIdOf(lifecycle) === traceIdOf(active)) return await fn();
  const subject = eventSubject(cause.aggregate);
  return await inMessagingSpan(
    {
      operation: "process",
      template: subjectTemplate(subject),
      destination: subject,
      kind: SpanKind.INTERNAL,
      parent: contextFromTraceparent(lifecycle),
      links: linkTo(active),
      attributes: {
        [SpanAttributes.messageId]: cause.id,
        [SpanAttributes.eventTypes]: cause.type,
        [SpanAttributes.aggregateType]: cause.aggregate.type,
        [SpanAttributes.aggregateId]: cause.aggregate.id,
      },
    },
    () => fn(),
  );
}
