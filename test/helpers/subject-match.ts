// Whether a NATS subject pattern (`*` one token, `>` the rest) covers a subject, as the server
// reads a grant: for tests that check shared/nats/trust.ts's permissions without a server.
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.'), s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
