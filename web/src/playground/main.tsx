import "@xyflow/react/dist/style.css";
import "../shared/styles.css";
import "./playground.css";
import { createRoot } from "react-dom/client";
import { Playground } from "./Playground";

createRoot(document.getElementById("root")!).render(<Playground />);
