/**
 * The scripts the installer sends over SSM Run Command (`AWS-RunShellScript`), one per
 * step. Every script:
 *  - starts with the `# cairn-step: <step> key=value …` header that names the step for
 *    people reading the SSM console (and for libs/sim, which reads it instead of running
 *    the script);
 *  - is idempotent: it converges files and services to what they should be, so running
 *    it twice is safe (a retry after a timeout may find the first attempt half done);
 *  - pins the K3s version, downloads the binary with its published checksum verified,
 *    and skips the download when the binary there is that version already (a pre-built
 *    Cairn AMI);
 *  - fetches secrets on the instance from the cluster's SecureString parameters: the
 *    join token and the kubeconfig never appear in the command's text, an event or a log.
 */
import type { InstallStep, Taint } from "@cairn/events";

export interface StepScriptInput {
  readonly step: InstallStep;
  readonly clusterId: string;
  readonly region: string;
  /**
   * The node's name. Absent: the node names itself after its EC2 instance id, read from
   * the instance metadata — one script for every node of a batch (one SSM command).
   */
  readonly node?: string;
  readonly role: "server" | "agent";
  readonly k3sVersion: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly taints: readonly Taint[];
  /** Parameter names (never values). */
  readonly tokenParameter: string;
  readonly kubeconfigParameter: string;
  /** `https://<first server>:6443` for joins. */
  readonly serverUrl?: string;
  /** Embedded etcd (more than one server): the first server starts with `cluster-init`. */
  readonly ha: boolean;
}

/** A header value: bare when it can be, else double-quoted with `\"` and `\\` escaped. */
function headerValue(v: string): string {
  return /^[^\s"]+$/.test(v) ? v : `"${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

const labelList = (labels: Readonly<Record<string, string>>) =>
  Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`);
const taintList = (taints: readonly Taint[]) =>
  taints.map((t) => `${t.key}${t.value !== undefined ? `=${t.value}` : ""}:${t.effect}`);

/** The header line. */
export function stepHeader(i: StepScriptInput): string {
  const pairs: [string, string][] = [
    ["cluster", i.clusterId],
    i.node !== undefined ? ["node", i.node] : ["node-name", "instance-id"],
    ["role", i.role],
    ["version", i.k3sVersion],
  ];
  const labels = labelList(i.labels);
  if (labels.length > 0) pairs.push(["labels", labels.join(",")]);
  const taints = taintList(i.taints);
  if (taints.length > 0) pairs.push(["taints", taints.join(",")]);
  if (i.step === "k3s-server-init") pairs.push(["kubeconfig-param", i.kubeconfigParameter]);
  return `# cairn-step: ${i.step} ${pairs.map(([k, v]) => `${k}=${headerValue(v)}`).join(" ")}`;
}

/** A bash single-quoted literal. */
export function sh(v: string): string {
  return `'${v.replaceAll("'", `'"'"'`)}'`;
}

const COMMON = String.raw`
set -euo pipefail
umask 077
log() { echo "[cairn] step $STEP: $*"; }

# The pinned K3s binary, verified against the release's published checksums; skipped
# when the binary there is that version already (a pre-built Cairn AMI).
ensure_k3s() {
  if command -v k3s >/dev/null 2>&1 && k3s --version | grep -qF "k3s version $K3S_VERSION "; then
    log "k3s $K3S_VERSION already installed"
    return
  fi
  local arch suffix url tmp
  arch="$(uname -m)"
  case "$arch" in
    x86_64) suffix="" ; sums="sha256sum-amd64.txt" ;;
    aarch64|arm64) suffix="-arm64" ; sums="sha256sum-arm64.txt" ;;
    *) echo "unsupported architecture $arch" >&2; exit 3 ;;
  esac
  url="https://github.com/k3s-io/k3s/releases/download/$(printf %s "$K3S_VERSION" | sed 's/+/%2B/g')"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  curl -fsSL --retry 5 --retry-connrefused -o "$tmp/k3s$suffix" "$url/k3s$suffix"
  curl -fsSL --retry 5 --retry-connrefused -o "$tmp/$sums" "$url/$sums"
  (cd "$tmp" && grep -E " k3s$suffix\$" "$sums" | sha256sum -c -)
  install -m 0755 "$tmp/k3s$suffix" /usr/local/bin/k3s
  log "k3s $K3S_VERSION installed (checksum verified)"
}

# The instance's own id (IMDSv2): a batch's nodes are named after their instances.
instance_id() {
  local t
  t="$(curl -fsS --retry 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)"
  curl -fsS --retry 5 -H "X-aws-ec2-metadata-token: $t" http://169.254.169.254/latest/meta-data/instance-id
}

# The join token, read on the instance from its SecureString into a root-only file.
fetch_token() {
  mkdir -p /etc/rancher/k3s
  aws ssm get-parameter --region "$REGION" --name "$TOKEN_PARAM" --with-decryption \
    --query Parameter.Value --output text > /etc/rancher/k3s/cluster-token.new
  mv /etc/rancher/k3s/cluster-token.new /etc/rancher/k3s/cluster-token
}

# Writes the config and the unit, and (re)starts K3s only when something changed.
converge() {
  local unit="$1" mode="$2" config="/etc/rancher/k3s/config.yaml"
  mkdir -p /etc/rancher/k3s
  printf '%s\n' "$CONFIG" > "$config.new"
  cat > "/etc/systemd/system/$unit.service.new" <<UNIT
[Unit]
Description=K3s ($mode), installed by Cairn
Wants=network-online.target
After=network-online.target
[Service]
Type=notify
ExecStart=/usr/local/bin/k3s $mode
KillMode=process
Delegate=yes
LimitNOFILE=1048576
Restart=always
RestartSec=5s
[Install]
WantedBy=multi-user.target
UNIT
  local changed=0
  cmp -s "$config.new" "$config" || { mv "$config.new" "$config"; changed=1; }
  cmp -s "/etc/systemd/system/$unit.service.new" "/etc/systemd/system/$unit.service" \
    || { mv "/etc/systemd/system/$unit.service.new" "/etc/systemd/system/$unit.service"; changed=1; }
  rm -f "$config.new" "/etc/systemd/system/$unit.service.new"
  systemctl daemon-reload
  systemctl enable "$unit" >/dev/null 2>&1
  if [ "$changed" = 1 ] || ! systemctl is-active --quiet "$unit"; then
    systemctl restart "$unit"
  fi
  log "$unit active"
}
`;

/** The `config.yaml` lines (labels and taints given at join). */
function configYaml(i: StepScriptInput, extra: string[]): string {
  const lines = [
    // Without a name given, the script prepends the instance's own (see nodeNameLine).
    ...(i.node !== undefined ? [`node-name: ${JSON.stringify(i.node)}`] : []),
    "token-file: /etc/rancher/k3s/cluster-token",
    ...extra,
  ];
  const labels = labelList(i.labels);
  if (labels.length > 0) lines.push("node-label:", ...labels.map((l) => `  - ${JSON.stringify(l)}`));
  const taints = taintList(i.taints);
  if (taints.length > 0) lines.push("node-taint:", ...taints.map((t) => `  - ${JSON.stringify(t)}`));
  return lines.join("\n");
}

/** A script for a batch names the node on the instance: `node-name` from its own instance id. */
function nodeNameLine(i: StepScriptInput): string {
  return i.node !== undefined ? "" : `\nCONFIG="node-name: \\"$(instance_id)\\""$'\\n'"$CONFIG"`;
}

function body(i: StepScriptInput): string {
  switch (i.step) {
    case "k3s-server-init":
      return String.raw`
CONFIG=${sh(configYaml(i, i.ha ? ["cluster-init: true", 'write-kubeconfig-mode: "0600"'] : ['write-kubeconfig-mode: "0600"']))}
ensure_k3s
fetch_token
converge k3s server
for _ in $(seq 1 120); do k3s kubectl get --raw /readyz >/dev/null 2>&1 && break; sleep 2; done
k3s kubectl get --raw /readyz >/dev/null
# The kubeconfig, pointed at this server's private address, into the cluster's SecureString.
ip="$(hostname -I | awk '{print $1}')"
sed "s#https://127.0.0.1:6443#https://$ip:6443#" /etc/rancher/k3s/k3s.yaml > /etc/rancher/k3s/cairn-kubeconfig
aws ssm put-parameter --region "$REGION" --name "$KUBECONFIG_PARAM" --type SecureString --overwrite \
  --value "file:///etc/rancher/k3s/cairn-kubeconfig" >/dev/null
rm -f /etc/rancher/k3s/cairn-kubeconfig
log "k3s $K3S_VERSION installed; kubeconfig written to SSM parameter $KUBECONFIG_PARAM"
`;
    case "k3s-server-join":
      return `
CONFIG=${sh(configYaml(i, [`server: ${JSON.stringify(i.serverUrl ?? "")}`, 'write-kubeconfig-mode: "0600"']))}
ensure_k3s
fetch_token
converge k3s server
log "k3s $K3S_VERSION server joined ${i.serverUrl ?? ""}"
`;
    case "k3s-agent-join":
      return `
CONFIG=${sh(configYaml(i, [`server: ${JSON.stringify(i.serverUrl ?? "")}`]))}${nodeNameLine(i)}
ensure_k3s
fetch_token
converge k3s-agent agent
log "k3s $K3S_VERSION agent joined ${i.serverUrl ?? ""}"
`;
    case "k3s-restart":
      return `
unit=k3s; systemctl cat k3s-agent >/dev/null 2>&1 && unit=k3s-agent
systemctl restart "$unit"
log "$unit restarted"
`;
    case "k3s-check":
      return `
unit=k3s; systemctl cat k3s-agent >/dev/null 2>&1 && unit=k3s-agent
systemctl is-active "$unit"
`;
    case "k3s-upgrade":
      return `
ensure_k3s
unit=k3s; systemctl cat k3s-agent >/dev/null 2>&1 && unit=k3s-agent
systemctl restart "$unit"
log "$unit upgraded to $K3S_VERSION"
`;
  }
}

/** The `commands` parameter of the step's SendCommand: the header, then the script. */
export function stepScript(i: StepScriptInput): string[] {
  const vars = [
    `STEP=${sh(i.step)}`,
    `REGION=${sh(i.region)}`,
    `K3S_VERSION=${sh(i.k3sVersion)}`,
    `TOKEN_PARAM=${sh(i.tokenParameter)}`,
    `KUBECONFIG_PARAM=${sh(i.kubeconfigParameter)}`,
  ].join("\n");
  return ["#!/bin/bash", stepHeader(i), `${vars}\n${COMMON}\n${body(i).trim()}\n`];
}
