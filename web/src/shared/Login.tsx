// Asks for the head's token once per browser session; a token the head refuses is said so, not kept.
import { type FormEvent, useState } from "react";
import { ApiError, api, setToken } from "./api";

export function Login({ title, onLogin }: { title: string; onLogin: () => void }) {
  const [token, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.checkToken(token.trim());
      setToken(token.trim());
      onLogin();
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? "The head refused this token. It is in the head's data dir (~/.lattice/token), or ask its admin for a key."
          : `Could not reach the head: ${String(err instanceof Error ? err.message : err)}`,
      );
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="login">
      <form onSubmit={submit} aria-label="sign in">
        <h1>{title}</h1>
        <label htmlFor="token">Token</label>
        <input
          id="token"
          type="password"
          autoComplete="off"
          value={token}
          onChange={(e) => setValue(e.target.value)}
          placeholder="the head's token or an API key"
          autoFocus
        />
        <button type="submit" disabled={busy || !token.trim()}>
          Sign in
        </button>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <p className="muted">Kept for this browser session only (sessionStorage); sent to this head alone.</p>
      </form>
    </div>
  );
}
