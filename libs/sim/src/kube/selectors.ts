/**
 * Label and field selectors as kube-apiserver parses them (k8s.io/apimachinery
 * `labels.Parse`, `fields.ParseSelector`), the `LabelSelector` objects of Deployments
 * and PodDisruptionBudgets, and label key/value validation.
 */

export type Labels = Readonly<Record<string, string>>;

export type Requirement =
  | { key: string; op: "exists" | "!exists" }
  | { key: string; op: "=" | "!="; value: string }
  | { key: string; op: "in" | "notin"; values: string[] }
  | { key: string; op: ">" | "<"; value: number };

/** A parsed label selector: every requirement must hold (an empty one matches all). */
export type LabelSelector = readonly Requirement[];

export class SelectorError extends Error {}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Why a label value is invalid, or undefined (the API's own wording). */
export function labelValueError(value: string): string | undefined {
  if (value.length > 63) return "must be no more than 63 characters";
  if (!LABEL_VALUE.test(value)) {
    return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
  }
  return undefined;
}

/** Why a qualified name (a label or annotation key, a taint key) is invalid, or undefined. */
export function qualifiedNameError(key: string): string | undefined {
  const slash = key.lastIndexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined) {
    if (prefix.length === 0) return "prefix part must be non-empty";
    const e = dns1123SubdomainError(prefix);
    if (e) return `prefix part ${e}`;
  }
  if (name.length === 0) return "name part must be non-empty";
  if (name.length > 63) return "name part must be no more than 63 characters";
  if (!NAME_PART.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
  }
  return undefined;
}

export function dns1123SubdomainError(name: string): string | undefined {
  if (name.length > 253) return "must be no more than 253 characters";
  if (!DNS1123_SUBDOMAIN.test(name)) {
    return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
  }
  return undefined;
}

export function dns1123LabelError(name: string): string | undefined {
  if (name.length > 63) return "must be no more than 63 characters";
  if (!DNS1123_LABEL.test(name)) {
    return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
  }
  return undefined;
}

// ---------------------------------------------------------------- label selectors

type Token =
  | { t: "id"; v: string }
  | { t: "op"; v: "=" | "==" | "!=" | ">" | "<" | "!" }
  | { t: "("; v: "(" }
  | { t: ")"; v: ")" }
  | { t: ","; v: "," };

function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === " " || c === "\t" || c === "\n") {
      i++;
    } else if (c === "(" || c === ")" || c === ",") {
      out.push({ t: c, v: c } as Token);
      i++;
    } else if (c === "=" || c === "!" || c === ">" || c === "<") {
      const two = s.slice(i, i + 2);
      if (two === "==" || two === "!=") {
        out.push({ t: "op", v: two });
        i += 2;
      } else {
        out.push({ t: "op", v: c as "=" | "!" | ">" | "<" });
        i++;
      }
    } else {
      let j = i;
      while (j < s.length && !" \t\n(),=!<>".includes(s[j]!)) j++;
      out.push({ t: "id", v: s.slice(i, j) });
      i = j;
    }
  }
  return out;
}

/** Parses `a=b,c!=d,e,!f,g in (x,y),h notin (z),n>3`. Throws SelectorError. */
export function parseLabelSelector(input: string | undefined | null): LabelSelector {
  if (!input || input.trim() === "") return [];
  const toks = tokenize(input);
  const reqs: Requirement[] = [];
  let i = 0;
  const peek = () => toks[i];
  const fail = (why: string): never => {
    throw new SelectorError(`unable to parse requirement: ${why}`);
  };
  const key = (k: string) => {
    const e = qualifiedNameError(k);
    if (e) fail(`key: Invalid value: "${k}": ${e}`);
    return k;
  };
  const value = (v: string) => {
    const e = labelValueError(v);
    if (e) fail(`values[0][${v}]: Invalid value: "${v}": ${e}`);
    return v;
  };
  while (i < toks.length) {
    let t = peek()!;
    if (t.t === "op" && t.v === "!") {
      i++;
      t = peek() ?? fail("found '', expected: identifier after '!'");
      if (t.t !== "id") fail(`found '${t.v}', expected: identifier after '!'`);
      reqs.push({ key: key(t.v), op: "!exists" });
      i++;
    } else if (t.t === "id") {
      const k = key(t.v);
      i++;
      const n = peek();
      if (!n || n.t === ",") {
        reqs.push({ key: k, op: "exists" });
      } else if (n.t === "op" && (n.v === "=" || n.v === "==" || n.v === "!=")) {
        i++;
        const v = peek();
        if (!v || v.t === ",") {
          reqs.push({ key: k, op: n.v === "!=" ? "!=" : "=", value: "" });
        } else if (v.t === "id") {
          reqs.push({ key: k, op: n.v === "!=" ? "!=" : "=", value: value(v.v) });
          i++;
        } else {
          fail(`found '${v.v}', expected: identifier`);
        }
      } else if (n.t === "op" && (n.v === ">" || n.v === "<")) {
        i++;
        const v = peek();
        const num = v?.t === "id" ? Number(v.v) : Number.NaN;
        if (!Number.isInteger(num)) fail(`for 'Gt', 'Lt' operators, the value must be an integer`);
        reqs.push({ key: k, op: n.v, value: num });
        i++;
      } else if (n.t === "id" && (n.v === "in" || n.v === "notin")) {
        i++;
        if (peek()?.t !== "(") fail(`found '${peek()?.v ?? ""}', expected: '('`);
        i++;
        const values: string[] = [];
        for (;;) {
          const v = peek() ?? fail("found '', expected: ',', ')' or identifier");
          if (v.t === ")") {
            i++;
            break;
          }
          if (v.t === ",") {
            i++;
            continue;
          }
          if (v.t !== "id") fail(`found '${v.v}', expected: ',', ')' or identifier`);
          values.push(value(v.v));
          i++;
        }
        if (values.length === 0) fail("for 'in', 'notin' operators, values set can't be empty");
        reqs.push({ key: k, op: n.v, values });
      } else {
        fail(`found '${n.v}', expected: in, notin, =, ==, !=, gt, lt`);
      }
    } else {
      fail(`found '${t.v}', expected: !, identifier, or 'end of string'`);
    }
    const sep = peek();
    if (sep) {
      if (sep.t !== ",") fail(`found '${sep.v}', expected: ',' or 'end of string'`);
      i++;
      if (!peek()) fail("found '', expected: identifier after ','");
    }
  }
  return reqs;
}

export function matchesRequirement(r: Requirement, labels: Labels | undefined): boolean {
  const has = labels !== undefined && Object.hasOwn(labels, r.key);
  const v = has ? labels[r.key]! : undefined;
  switch (r.op) {
    case "exists":
      return has;
    case "!exists":
      return !has;
    case "=":
      return v === r.value;
    case "!=":
      return v !== r.value;
    case "in":
      return v !== undefined && r.values.includes(v);
    case "notin":
      return v === undefined || !r.values.includes(v);
    case ">":
    case "<": {
      if (v === undefined) return false;
      const n = Number(v);
      if (!Number.isInteger(n)) return false;
      return r.op === ">" ? n > r.value : n < r.value;
    }
  }
}

export function matchesLabels(sel: LabelSelector, labels: Labels | undefined): boolean {
  for (const r of sel) if (!matchesRequirement(r, labels)) return false;
  return true;
}

// ---------------------------------------------------------------- LabelSelector objects

export interface LabelSelectorObject {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/**
 * A `LabelSelector` object as requirements. `undefined`/null matches nothing (the API's
 * convention for PDBs and Deployments); `{}` matches everything.
 */
export function fromSelectorObject(o: LabelSelectorObject | null | undefined): LabelSelector | undefined {
  if (!o) return undefined;
  const reqs: Requirement[] = [];
  for (const [key, value] of Object.entries(o.matchLabels ?? {})) reqs.push({ key, op: "=", value });
  for (const e of o.matchExpressions ?? []) {
    switch (e.operator) {
      case "In":
        reqs.push({ key: e.key, op: "in", values: e.values ?? [] });
        break;
      case "NotIn":
        reqs.push({ key: e.key, op: "notin", values: e.values ?? [] });
        break;
      case "Exists":
        reqs.push({ key: e.key, op: "exists" });
        break;
      case "DoesNotExist":
        reqs.push({ key: e.key, op: "!exists" });
        break;
      default:
        throw new SelectorError(`"${e.operator}" is not a valid label selector operator`);
    }
  }
  return reqs;
}

/** The selector object as the `status.selector` string a Scale shows (`app=web,tier in (a,b)`). */
export function selectorString(sel: LabelSelector): string {
  return sel
    .map((r) => {
      switch (r.op) {
        case "exists":
          return r.key;
        case "!exists":
          return `!${r.key}`;
        case "=":
          return `${r.key}=${r.value}`;
        case "!=":
          return `${r.key}!=${r.value}`;
        case "in":
        case "notin":
          return `${r.key} ${r.op} (${[...r.values].sort().join(",")})`;
        default:
          return `${r.key}${r.op}${r.value}`;
      }
    })
    .sort()
    .join(",");
}

// ---------------------------------------------------------------- field selectors

export interface FieldRequirement {
  field: string;
  op: "=" | "!=";
  value: string;
}

/** Parses `metadata.name=x,spec.nodeName!=y` (with `\,` `\=` `\\` escapes). Throws SelectorError. */
export function parseFieldSelector(input: string | undefined | null): FieldRequirement[] {
  if (!input || input.trim() === "") return [];
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < input.length; i++) {
    const c = input[i]!;
    if (c === "\\" && i + 1 < input.length) {
      cur += c + input[i + 1]!;
      i++;
    } else if (c === ",") {
      parts.push(cur);
      cur = "";
    } else {
      cur += c;
    }
  }
  parts.push(cur);
  const unescaped = (s: string) => s.replace(/\\(.)/g, "$1");
  return parts.map((p) => {
    const m = /^(.*?)(!=|==|=)(.*)$/.exec(findUnescapedOp(p));
    if (!m) throw new SelectorError(`invalid selector: '${input}'; can't understand '${p}'`);
    const field = p.slice(0, m[1]!.length).trim();
    const value = p.slice(m[1]!.length + m[2]!.length);
    return { field, op: m[2] === "!=" ? "!=" : "=", value: unescaped(value) };
  });
}

/** Masks escaped characters so the operator search skips them (same length as `p`). */
function findUnescapedOp(p: string): string {
  return p.replace(/\\./g, "__");
}

export function matchesFields(
  reqs: readonly FieldRequirement[],
  get: (field: string) => string | undefined,
): boolean {
  for (const r of reqs) {
    const v = get(r.field) ?? "";
    if (r.op === "=" ? v !== r.value : v === r.value) return false;
  }
  return true;
}
