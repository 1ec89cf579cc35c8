/** The public contract's example command (DESIGN §7), for a given cluster id. */
export function demoCluster(clusterId: string) {
  return {
    type: "cluster.create",
    data: {
      clusterId,
      name: "demo",
      region: "eu-west-1",
      k3sVersion: "v1.31.4+k3s1",
      servers: { count: 1, instanceType: "t3.medium" },
      pools: [{ name: "workers", capacityType: "spot", instanceTypes: ["t3.large", "t3a.large"], count: 2 }],
    },
    meta: { actor: process.env.USER ?? "demo" },
  };
}
