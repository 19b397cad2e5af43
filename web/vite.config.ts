/// <reference types="vitest" />
// Two pages, one build: the Board and the Playground share src/shared (API client, DAG view, login).
// The output lands inside the Python package, so `pip install lattice-agent` serves it without Node.
// Content-hashed names and no timestamps keep the build byte-for-byte reproducible (.ci/run checks it).
import { resolve } from "node:path";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  base: "/ui/",
  build: {
    outDir: resolve(__dirname, "../lattice/web/dist"),
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      input: {
        board: resolve(__dirname, "board.html"),
        playground: resolve(__dirname, "playground.html"),
      },
      output: {
        // libraries in one chunk both pages share; the apps' own code in small per-page chunks
        manualChunks: (id) => (id.includes("node_modules") ? "vendor" : id.includes("/src/shared/") ? "shared" : undefined),
      },
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    css: false,
  },
});
