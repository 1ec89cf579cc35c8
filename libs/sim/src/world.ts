/**
 * What the protocol modules share. Each module owns its state and exposes a narrow
 * port here, so one can ask another (SSM asks EC2 whether an instance runs; a K3s
 * server step asks Kubernetes for an API server) without reaching into its data.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Latencies, SimClock } from "./clock.ts";
import type { FaultRegistry } from "./faults.ts";
import type { SimRandom } from "./random.ts";
import type { RequestLog } from "./request-log.ts";

export type InstanceState = "pending" | "running" | "stopping" | "stopped" | "shutting-down" | "terminated";

/** An EC2 instance as other modules see it, with its state as of now. */
export interface InstanceView {
  instanceId: string;
  region: string;
  state: InstanceState;
  instanceType: string;
  availabilityZone: string;
  privateIpAddress: string;
  privateDnsName: string;
  tags: Record<string, string>;
  /** Sim time (epoch ms) the instance last became running; undefined when it is not running. */
  runningSince?: number;
  spot: boolean;
  /** The RunInstances call it came from: its reservation, its ClientToken ("" for none), its position in it. */
  reservationId: string;
  clientToken: string;
  amiLaunchIndex: number;
}

export interface Ec2Port {
  /** The instance as of now, or undefined if this region never had it. */
  instance(region: string, instanceId: string): InstanceView | undefined;
  /** Every instance of a region as of now (admin and tests). */
  instances(region: string): InstanceView[];
}

export interface SsmPort {
  /** A parameter's value (decrypted), for modules that write or read what scripts would. */
  parameter(region: string, name: string): string | undefined;
  putParameter(region: string, name: string, value: string, secure: boolean): void;
}

/** A node as a K3s install registers it. */
export interface NodeRegistration {
  name: string;
  /** The EC2 instance behind the node (providerID aws:///<az>/<id>). */
  instanceId?: string;
  availabilityZone?: string;
  role: "server" | "agent";
  labels: Record<string, string>;
  taints: { key: string; value?: string; effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute" }[];
  internalIp?: string;
}

export interface KubePort {
  /**
   * Brings up the API server of a managed cluster (idempotent) and returns its URL and
   * the bearer token a kubeconfig needs.
   */
  ensureCluster(clusterId: string): { server: string; token: string };
  /** Registers (or re-registers) a node, Ready. Idempotent by node name. */
  registerNode(clusterId: string, node: NodeRegistration): void;
  /** Sets a node's Ready condition (faults: a node going NotReady). */
  setNodeReady(clusterId: string, nodeName: string, ready: boolean): void;
  /**
   * The node's kubelet stops posting status (its instance is gone or stopped): after
   * `nodeMonitorGrace` the node is Ready=Unknown (`NodeStatusUnknown`) with the
   * `node.kubernetes.io/unreachable` NoSchedule and NoExecute taints. A re-registration
   * or `setNodeReady(…, true)` brings it back.
   */
  stopKubelet(clusterId: string, nodeName: string): void;
  /** Removes a node (its instance was terminated); its pods go after `orphanPodGc`. */
  removeNode(clusterId: string, nodeName: string): void;
  /**
   * Replaces the cluster's datastore (a K3s server rebuilt from scratch): a fresh store
   * whose resourceVersions start again from the beginning, with the same token, the
   * default namespaces and the nodes re-registered by their kubelets; workloads are gone.
   * Open watches end, as the old server's connections do.
   */
  replaceDatastore(clusterId: string): void;
  /** A kubeconfig (YAML) for the cluster's API server: server URL and bearer token. */
  kubeconfig(clusterId: string): string;
  /**
   * Whether the image registry has `image` (default: every image). A Deployment's pod of
   * an image it does not have fails its pull (ErrImagePull, then ImagePullBackOff).
   */
  setImageAvailable(image: string, available: boolean): void;
  clusters(): string[];
}

/** SQS as other modules use it: the sim's EventBridge delivers events to queues through it. */
export interface SqsPort {
  /** Sends a message to a queue of the region, creating the queue when it does not exist yet. */
  deliver(region: string, queueName: string, body: string): { messageId: string };
  /** The bodies of the messages still in a queue (received or not), oldest first. */
  messages(region: string, queueName: string): string[];
}

export interface World {
  ec2: Ec2Port;
  ssm: SsmPort;
  kube: KubePort;
  sqs: SqsPort;
}

/** What every module is built with. */
export interface SimContext {
  readonly clock: SimClock;
  readonly random: SimRandom;
  readonly faults: FaultRegistry;
  readonly requests: RequestLog;
  readonly latencies: Latencies;
  /** The sim's own base URL (`http://127.0.0.1:<port>`), known once it listens. */
  baseUrl(): string;
  /** The other modules, available once all are built. */
  readonly world: World;
}

/** One HTTP call routed to a module. `body` is the whole request body. */
export interface SimCall {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly body: Buffer;
  /** The AWS region the request was signed for (`us-east-1` when unsigned). */
  readonly region: string;
  /**
   * Sim time (epoch ms) the call is taken to reach the service: its arrival plus the
   * `apiCall` latency, never later than now. The sim is one process and handles calls one
   * after another; a cloud does not, so a call queued behind others (five 100-instance
   * RunInstances at once) is still dated when it came, not when its turn came. Absent:
   * now (calls the router does not date: Kubernetes, admin).
   */
  readonly at?: number;
  /**
   * Given for a call the router does not journal on arrival (a long poll): the module
   * journals it right before it changes anything, so a replay does what it did then.
   */
  readonly journal?: () => void;
}

/** A protocol module: answers its calls, shows its state, offers its port. */
export interface SimModule<P> {
  readonly port: P;
  handle(call: SimCall): Promise<void>;
  /** A JSON-able picture of its state for the admin API. */
  state(): unknown;
  /** Admin actions specific to the module (`POST /_sim/<module>/<action>`). */
  admin?(action: string, body: unknown): Promise<unknown>;
  /**
   * Applies what time has made happen since the last call (a script finished, so its
   * node registers). The router calls every module's settle before each request, so
   * effects are lazy yet visible to any later call, whichever module answers it.
   */
  settle?(): void;
  /**
   * The module's whole state as JSON-able data (Maps and Sets allowed, see snapshot.ts):
   * what journal compaction writes instead of the calls that led to it. Includes the
   * state of any PRNG of its own, so ids go on where they were.
   */
  snapshot?(): unknown;
  /** Replaces the module's state with a `snapshot` (at start, before any call). */
  restore?(snapshot: unknown): void;
}
