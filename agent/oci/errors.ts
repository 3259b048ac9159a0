// sl-runtime's own refusals: one line on stderr, exit 1 (cli.ts).
export class RuntimeCliError extends Error {
  constructor(message: string) { super(message); this.name = 'RuntimeCliError'; }
}
