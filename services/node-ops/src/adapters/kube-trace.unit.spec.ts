import { describe, expect, it } from "vitest";
import { kubePath } from "./kube-trace.ts";

describe("kubePath: a request path's template and what it names", () => {
  it.each([
    ["/api/v1/nodes", "/api/v1/nodes", {}],
    [
      "/api/v1/nodes/ip-10-0-0-1.eu-west-1.compute.internal",
      "/api/v1/nodes/{name}",
      { "k8s.node.name": "ip-10-0-0-1.eu-west-1.compute.internal" },
    ],
    [
      "/api/v1/namespaces/cairn-sessions/pods/s-1/eviction",
      "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
      { "k8s.namespace.name": "cairn-sessions", "k8s.pod.name": "s-1" },
    ],
    [
      "/api/v1/namespaces/cairn-sessions/pods",
      "/api/v1/namespaces/{namespace}/pods",
      { "k8s.namespace.name": "cairn-sessions" },
    ],
    [
      "/apis/apps/v1/namespaces/default/deployments/web",
      "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
      { "k8s.namespace.name": "default", "k8s.deployment.name": "web" },
    ],
    [
      "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
      "/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets",
      { "k8s.namespace.name": "default" },
    ],
    // A namespace itself is a resource, not a scope.
    ["/api/v1/namespaces/cairn-sessions", "/api/v1/namespaces/{name}", {}],
    // A server under a path of its own (a proxy, the sim): the route starts at /api.
    ["/k8s/clusters/c-1/api/v1/nodes/n-1", "/api/v1/nodes/{name}", { "k8s.node.name": "n-1" }],
    ["/api/v1/nodes?watch=true&resourceVersion=12", "/api/v1/nodes", {}],
  ])("%s → %s", (path, template, attributes) => {
    expect(kubePath(path)).toEqual({ template, attributes });
  });
});
