/** Secret values, held on the server: never in the repository, redacted from all output. */
export interface Secrets {
  get(name: string): string | undefined;
  /** Every known secret value, for redaction. */
  values(): string[];
}
