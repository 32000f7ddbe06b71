/**
 * GitHub's OAuth web flow for people signing in to the server's pages, with the GitHub App's
 * client id and secret (Probot's setup flow writes GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET).
 * `@octokit/oauth-methods` builds the authorize URL and exchanges the code; both go to the web
 * host of the API the server talks to (github.com, or a GitHub Enterprise host), which it
 * derives from the request's base URL.
 */
import { exchangeWebFlowCode, getWebFlowAuthorizationUrl } from "@octokit/oauth-methods";
import { Octokit } from "@octokit/rest";
import { normaliseLogin } from "../../core/engine/gates.js";
import { SluiceError } from "../../core/errors.js";

export interface OAuthConfig {
  clientId: string;
  clientSecret: string;
  /** The REST API base (https://api.github.com, or GHE_PROTOCOL://GHE_HOST/api/v3). */
  apiUrl: string;
}

export interface GitHubUser {
  login: string;
  /** The person's user-to-server token: it reads what they may read, nothing more. */
  token: string;
}

export interface OAuthClient {
  /** Where to send the browser to sign in; GitHub sends it back to `redirectUrl` with `state`. */
  authorizeUrl(redirectUrl: string, state: string): string;
  /** The person behind a code GitHub sent back. */
  signIn(code: string, redirectUrl: string): Promise<GitHubUser>;
  /** An Octokit acting as the person (to ask what they may read). */
  asUser(token: string): Octokit;
}

const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

export function createOAuthClient(config: OAuthConfig): OAuthClient {
  const app = new Octokit({ baseUrl: config.apiUrl, log: quiet });
  const asUser = (token: string) => new Octokit({ baseUrl: config.apiUrl, auth: token, log: quiet });
  return {
    authorizeUrl(redirectUrl, state) {
      return getWebFlowAuthorizationUrl({ clientType: "github-app", clientId: config.clientId, redirectUrl, state, request: app.request }).url;
    },
    async signIn(code, redirectUrl) {
      let token: string;
      try {
        const r = await exchangeWebFlowCode({ clientType: "github-app", clientId: config.clientId, clientSecret: config.clientSecret, code, redirectUrl, request: app.request });
        token = r.authentication.token;
      } catch (e) {
        throw new SluiceError("UNAUTHORIZED", `GitHub did not accept the sign-in: ${e instanceof Error ? e.message : String(e)}`);
      }
      const me = await asUser(token).request("GET /user");
      if (me.data.type === "Bot") throw new SluiceError("UNAUTHORIZED", `${me.data.login} is a bot: only people sign in`);
      return { login: normaliseLogin(me.data.login), token };
    },
    asUser,
  };
}
