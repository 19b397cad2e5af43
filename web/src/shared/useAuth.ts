import { useEffect, useState } from "react";
import { clearToken, getToken, onUnauthorized } from "./api";

/** Whether a token is kept; turns false (and drops it) the moment the head answers 401. */
export function useAuth(): [boolean, () => void, () => void] {
  const [authed, setAuthed] = useState(() => getToken() !== null);
  useEffect(
    () =>
      onUnauthorized(() => {
        clearToken();
        setAuthed(false);
      }),
    [],
  );
  return [authed, () => setAuthed(true), () => (clearToken(), setAuthed(false))];
}

/** Calls `fn` now and every `ms` until unmounted (the Board's views refresh themselves). */
export function usePolling(fn: () => void | Promise<void>, ms: number, deps: unknown[]): void {
  useEffect(() => {
    let alive = true;
    const tick = async () => {
      if (alive) await fn();
    };
    void tick();
    const timer = setInterval(tick, ms);
    return () => {
      alive = false;
      clearInterval(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
}
