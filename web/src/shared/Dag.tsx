// A run's DAG, read-only: one node per task coloured by its live state (Board and Playground runs).
import {
  Background,
  Controls,
  type Edge as FlowEdge,
  type Node,
  type NodeChange,
  Position,
  ReactFlow,
  applyNodeChanges,
  useReactFlow,
} from "@xyflow/react";
import { useEffect, useMemo, useState } from "react";
import { stateColor } from "./format";
import { type Edge, layeredPositions } from "./layout";

export interface DagTask {
  name: string;
  state: string;
  label?: string;
}

export function Dag({
  tasks,
  edges,
  selected,
  onSelect,
}: {
  tasks: DagTask[];
  edges: Edge[];
  selected?: string | null;
  onSelect?: (name: string) => void;
}) {
  const names = useMemo(() => tasks.map((t) => t.name), [tasks]);
  const positions = useMemo(() => layeredPositions(names, edges), [names, edges]);
  const nodes: Node[] = useMemo(() => tasks.map((task) => ({
    id: task.name,
    position: positions.get(task.name) ?? { x: 0, y: 0 },
    data: {
      label: (
        <div className="dag-node" data-testid={`dag-task-${task.name}`} data-state={task.state}>
          <strong>{task.name}</strong>
          <span>{task.label ?? task.state}</span>
        </div>
      ),
    },
    style: {
      border: `2px solid ${stateColor(task.state)}`,
      background: task.name === selected ? "#eef4ff" : "#fff",
      width: 190,
      padding: 6,
    },
    sourcePosition: Position.Right,
    targetPosition: Position.Left,
    draggable: false,
    connectable: false,
  })), [tasks, positions, selected]);
  // React Flow hides a node until it has measured it; keep each node's measurement across the live
  // updates (new objects every few hundred ms), or a node whose size never changes stays hidden.
  const [flowNodes, setFlowNodes] = useState<Node[]>([]);
  useEffect(() => {
    setFlowNodes((previous) => {
      const measured = new Map(previous.map((n) => [n.id, n.measured]));
      return nodes.map((n) => ({ ...n, measured: measured.get(n.id) }));
    });
  }, [nodes]);
  const onNodesChange = (changes: NodeChange[]) => setFlowNodes((current) => applyNodeChanges(changes, current));
  const flowEdges: FlowEdge[] = edges.map((e, i) => ({
    id: `${e.source}->${e.target}#${i}`,
    source: e.source,
    target: e.target,
    animated: tasks.find((t) => t.name === e.target)?.state === "running",
  }));
  return (
    <div className="dag" data-testid="dag">
      <ReactFlow
        nodes={flowNodes}
        onNodesChange={onNodesChange}
        edges={flowEdges}
        fitView
        fitViewOptions={{ maxZoom: 1.2, padding: 0.2 }}
        nodesConnectable={false}
        onNodeClick={(_event, node) => onSelect?.(node.id)}
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls showInteractive={false} />
        <FitOnChange signature={[...names].sort().join("|")} />
      </ReactFlow>
    </div>
  );
}

/** Fits the view again when the set of tasks changes (the spec's tasks first, then the run's). */
function FitOnChange({ signature }: { signature: string }) {
  const { fitView } = useReactFlow();
  useEffect(() => {
    const timer = setTimeout(() => void fitView({ maxZoom: 1.2, padding: 0.2 }), 60);
    return () => clearTimeout(timer);
  }, [signature, fitView]);
  return null;
}
