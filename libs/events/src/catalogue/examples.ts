/**
 * The public contract's example command (DESIGN §7): the CLI's demo, the API's
 * OpenAPI example and tests all start from it, so it is written once.
 *
 * @example exampleClusterCreate("demo-1").data.region // "eu-west-1"
 */
export function exampleClusterCreate(clusterId = "demo-1", actor = "alice") {
  return {
    type: "cluster.create" as const,
    data: {
      clusterId,
      name: "demo",
      region: "eu-west-1",
      k3sVersion: "v1.31.4+k3s1",
      servers: { count: 1, instanceType: "t3.medium" },
      pools: [
        {
          name: "workers",
          capacityType: "spot" as const,
          instanceTypes: ["t3.large", "t3a.large"],
          count: 2,
        },
      ],
    },
    meta: { actor },
  };
}
