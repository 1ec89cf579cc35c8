/**
 * Where a cluster's secrets live: SSM Parameter Store SecureStrings scoped to the
 * cluster. The installer creates the join token and the first server writes the
 * kubeconfig; node-ops reads the kubeconfig. Events name these parameters, never their
 * values.
 *
 * @example clusterSecretParameters("demo-1").kubeconfig // "/cairn/demo-1/kubeconfig"
 */
export function clusterSecretParameters(clusterId: string): { token: string; kubeconfig: string } {
  return { token: `/cairn/${clusterId}/token`, kubeconfig: `/cairn/${clusterId}/kubeconfig` };
}
