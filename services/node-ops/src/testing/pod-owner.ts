import { AppsV1Api, type KubeConfig } from "@kubernetes/client-node";

/**
 * A controller for fixture pods, as a real cluster could hold one: a Deployment of no
 * replicas whose selector matches `labels`. A drain refuses pods no controller manages
 * (kubectl's rule) and the garbage collector deletes pods whose owner does not exist, so
 * fixtures point at this instead of a made-up uid. Returns the owner reference to put on
 * the pods.
 */
export async function fixturePodOwner(
  kc: KubeConfig,
  o: { name?: string; namespace?: string; labels?: Record<string, string> } = {},
) {
  const name = o.name ?? "fixtures";
  const labels = o.labels ?? { fixture: "owner" };
  const d = await kc.makeApiClient(AppsV1Api).createNamespacedDeployment({
    namespace: o.namespace ?? "default",
    body: {
      metadata: { name },
      spec: {
        replicas: 0,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: "c", image: "nginx:1.27" }] } },
      },
    },
  });
  return { apiVersion: "apps/v1", kind: "Deployment", name, uid: d.metadata!.uid!, controller: true };
}
