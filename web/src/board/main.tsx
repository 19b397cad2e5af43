import "@xyflow/react/dist/style.css";
import "../shared/styles.css";
import { createRoot } from "react-dom/client";
import { Board } from "./Board";

createRoot(document.getElementById("root")!).render(<Board />);
