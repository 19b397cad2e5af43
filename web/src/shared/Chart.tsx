// A small time-series chart (uPlot: tiny, no dependencies, canvas-drawn).
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const PALETTE = ["#2f80ed", "#27ae60", "#f2994a", "#9b51e0", "#eb5757", "#56ccf2"];

export function TimeChart({
  title,
  times,
  series,
}: {
  title: string;
  times: number[];
  series: { label: string; values: number[] }[];
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const labels = series.map((s) => s.label).join("|");

  useEffect(() => {
    if (!box.current) return;
    const options: uPlot.Options = {
      title,
      width: Math.max(box.current.clientWidth, 360),
      height: 200,
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2 }))],
      axes: [{}, { size: 50 }],
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
    };
    plot.current = new uPlot(options, [times, ...series.map((s) => s.values)], box.current);
    return () => plot.current?.destroy();
    // rebuilt only when the set of series changes; data updates go through setData below
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [title, labels]);

  useEffect(() => {
    plot.current?.setData([times, ...series.map((s) => s.values)]);
  }, [times, series]);

  return <div className="card" ref={box} data-testid={`chart-${title}`} />;
}
