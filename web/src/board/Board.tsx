// The Board: runs, one run's live DAG, the cluster and its queues, numbers over time. Hash routes
// (#/runs, #/runs/ID, #/cluster, #/metrics) keep the head's side to one HTML page.
import { useEffect, useState } from "react";
import { Login } from "../shared/Login";
import { useAuth } from "../shared/useAuth";
import { ClusterView } from "./ClusterView";
import { MetricsView } from "./MetricsView";
import { RunPage } from "./RunPage";
import { RunsList } from "./RunsList";

export function useHashRoute(): string {
  const [hash, setHash] = useState(() => location.hash || "#/runs");
  useEffect(() => {
    const update = () => setHash(location.hash || "#/runs");
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return hash;
}

export function Board() {
  const [authed, login, logout] = useAuth();
  const route = useHashRoute();
  if (!authed) return <Login title="Lattice Board" onLogin={login} />;
  const runMatch = /^#\/runs\/(.+)$/.exec(route);
  const section = runMatch ? "runs" : route.replace(/^#\//, "").split("/")[0];
  return (
    <>
      <header className="top">
        <h1>Lattice Board</h1>
        <nav>
          <a href="#/runs" className={section === "runs" ? "active" : ""}>Runs</a>
          <a href="#/cluster" className={section === "cluster" ? "active" : ""}>Cluster</a>
          <a href="#/metrics" className={section === "metrics" ? "active" : ""}>Metrics</a>
        </nav>
        <span className="spacer" />
        <a href="/playground" style={{ color: "#cbd2d9" }}>Playground</a>
        <button onClick={logout}>Sign out</button>
      </header>
      <main>
        {runMatch ? (
          <RunPage runId={decodeURIComponent(runMatch[1])} />
        ) : section === "cluster" ? (
          <ClusterView />
        ) : section === "metrics" ? (
          <MetricsView />
        ) : (
          <RunsList />
        )}
      </main>
    </>
  );
}
