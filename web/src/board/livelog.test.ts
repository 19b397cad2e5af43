import { describe, expect, it } from "vitest";
import { LIVE_KEEP_CHARS, appendLiveLog } from "./RunPage";

const ev = (task: string, attempt: string, text: string, seq = 1) => ({
  seq,
  type: "task_log",
  task,
  data: { stream: "stdout", text, attempt_id: attempt, chunk: seq, live: true },
});

describe("appendLiveLog", () => {
  it("appends a task's live chunks and starts over for a new attempt", () => {
    let logs = appendLiveLog({}, ev("a", "r:a:1", "one\n"));
    logs = appendLiveLog(logs, ev("a", "r:a:1", "two\n", 2));
    logs = appendLiveLog(logs, ev("b", "r:b:1", "other\n", 3));
    expect(logs.a).toEqual({ attemptId: "r:a:1", text: "one\ntwo\n", cut: false });
    logs = appendLiveLog(logs, ev("a", "r:a:2", "retry\n", 4));
    expect(logs.a.text).toBe("retry\n");
    expect(logs.b.text).toBe("other\n");
  });

  it("keeps only the last characters of a long log, and ignores malformed events", () => {
    const big = "x".repeat(LIVE_KEEP_CHARS) + "tail";
    const logs = appendLiveLog({}, ev("a", "r:a:1", big));
    expect(logs.a.text.length).toBe(LIVE_KEEP_CHARS);
    expect(logs.a.text.endsWith("tail")).toBe(true);
    expect(logs.a.cut).toBe(true);
    expect(appendLiveLog(logs, { seq: 9, type: "task_log", task: "a", data: { text: 5 } })).toBe(logs);
  });
});
