/**
 * GitHub's OAuth web flow as the simulator serves it (outside the REST API, so outside the
 * OpenAPI description: github.com/login/oauth/…, or the GHE host's): an authorize page that
 * sends the signed-in person back with a code, and the exchange of that code for a user token.
 * Who is "signed in to GitHub" in the browser is set by the test (`sim.oauth.signIn(login)`).
 */
import { randomBytes } from "node:crypto";

export interface OAuthClient {
  clientId: string;
  clientSecret: string;
}

interface Grant {
  clientId: string;
  login: string;
  redirectUri: string;
  expiresAt: number;
}

export interface OAuthAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export class OAuthSim {
  private readonly clients = new Map<string, OAuthClient>();
  private readonly grants = new Map<string, Grant>();
  /** The login signed in to GitHub in "the browser"; undefined: nobody (the authorize page says so). */
  signedIn: string | undefined;
  /** Every code exchange: client, whether it was accepted. */
  readonly exchanges: { clientId: string; ok: boolean; error?: string }[] = [];

  constructor(private readonly userToken: (login: string) => string) {}

  addClient(client: OAuthClient): void {
    this.clients.set(client.clientId, client);
  }

  signIn(login: string | undefined): void {
    this.signedIn = login;
  }

  /** Answers /login/oauth/* (undefined for any other path). */
  handle(method: string, path: string, query: URLSearchParams, body: unknown): OAuthAnswer | undefined {
    if (method === "GET" && path === "/login/oauth/authorize") return this.authorize(query);
    if (method === "POST" && path === "/login/oauth/access_token") return this.exchange(body);
    if (path.startsWith("/login/oauth/")) return { status: 404, headers: { "content-type": "text/plain" }, body: "Not Found" };
    return undefined;
  }

  private authorize(q: URLSearchParams): OAuthAnswer {
    const page = (status: number, html: string) => ({ status, headers: { "content-type": "text/html; charset=utf-8" }, body: `<!doctype html><html><body>${html}</body></html>` });
    const clientId = q.get("client_id") ?? "";
    const redirectUri = q.get("redirect_uri") ?? "";
    if (!this.clients.has(clientId)) return page(404, "<h1>Unknown client</h1>");
    if (!/^https?:\/\//.test(redirectUri)) return page(400, "<h1>The redirect_uri MUST match the registered callback URL for this application.</h1>");
    if (!this.signedIn) return page(401, "<h1>Sign in to GitHub</h1>");
    const code = randomBytes(10).toString("hex");
    this.grants.set(code, { clientId, login: this.signedIn, redirectUri, expiresAt: Date.now() + 600_000 });
    const back = new URL(redirectUri);
    back.searchParams.set("code", code);
    const state = q.get("state");
    if (state !== null) back.searchParams.set("state", state);
    return page(200, `<h1>Authorize the app</h1><p>Signed in as <b>${escape(this.signedIn)}</b>.</p><a id="authorize" href="${escape(back.toString())}">Authorize</a>`);
  }

  private exchange(body: unknown): OAuthAnswer {
    const b = (body ?? {}) as Record<string, unknown>;
    const json = (value: unknown) => ({ status: 200, headers: { "content-type": "application/json; charset=utf-8" }, body: JSON.stringify(value) });
    const clientId = String(b.client_id ?? "");
    const fail = (error: string, description: string) => {
      this.exchanges.push({ clientId, ok: false, error });
      // GitHub answers a failed exchange 200 with an error object.
      return json({ error, error_description: description, error_uri: "https://docs.github.com/apps/troubleshooting" });
    };
    const client = this.clients.get(clientId);
    if (!client || client.clientSecret !== b.client_secret) return fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.");
    const code = String(b.code ?? "");
    const grant = this.grants.get(code);
    this.grants.delete(code);
    if (!grant || grant.clientId !== clientId || grant.expiresAt < Date.now()) return fail("bad_verification_code", "The code passed is incorrect or expired.");
    if (b.redirect_uri !== undefined && b.redirect_uri !== grant.redirectUri) return fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.");
    this.exchanges.push({ clientId, ok: true });
    return json({ access_token: this.userToken(grant.login), token_type: "bearer", scope: "" });
  }
}
