import { createToken, ROLES, type Role } from "@cairn/projector";

/**
 * `cairn token create`: the secret, shown this once (the API keeps only its hash), and
 * the entry to add to the `tokens` list of the file `CAIRN_TOKENS_FILE` names.
 * @throws Error when the role is not one of viewer, operator, admin (or the user name is invalid).
 */
export function tokenCreate(user: string, role: string): string {
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new Error(`--role must be one of ${ROLES.join(", ")}, not ${JSON.stringify(role)}`);
  }
  const { token, entry } = createToken(user, role as Role);
  return [
    `token (shown once; the holder sends it as \`Authorization: Bearer <token>\`, the CLI reads CAIRN_TOKEN):`,
    `  ${token}`,
    `add this entry to the "tokens" list of your CAIRN_TOKENS_FILE:`,
    `  ${JSON.stringify(entry)}`,
    "",
  ].join("\n");
}
