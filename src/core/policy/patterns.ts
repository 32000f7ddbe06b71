/**
 * Allow and deny rules of the policy (SPEC §3). `ssh` entries are regular expressions matched
 * against the command; `http` entries are "METHOD url-glob" where METHOD may be `*`, `*` in the
 * URL matches within one path segment and `**` matches anything.
 */

export function compileUrlGlob(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*") {
      if (glob[i + 1] === "*") {
        re += ".*";
        i++;
      } else re += "[^/]*";
    } else re += c.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** Whether "METHOD url" is matched by a rule "METHOD url-glob" (METHOD `*` for any). */
export function matchesHttpRule(rule: string, method: string, url: string): boolean {
  const space = rule.indexOf(" ");
  const [ruleMethod, glob] = space < 0 ? ["*", rule] : [rule.slice(0, space), rule.slice(space + 1).trim()];
  if (ruleMethod !== "*" && ruleMethod.toUpperCase() !== method.toUpperCase()) return false;
  return compileUrlGlob(glob).test(url);
}

export function firstHttpRule(rules: readonly string[] | undefined, method: string, url: string): string | undefined {
  return rules?.find((r) => matchesHttpRule(r, method, url));
}

/** The first ssh rule (a regular expression) that matches the command, if any. */
export function firstSshRule(rules: readonly string[] | undefined, command: string): string | undefined {
  return rules?.find((r) => {
    try {
      return new RegExp(r).test(command);
    } catch {
      return command.includes(r);
    }
  });
}

/** A policy regex that does not compile: the config's validation reports it. */
export function regexError(pattern: string): string | undefined {
  try {
    new RegExp(pattern);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
