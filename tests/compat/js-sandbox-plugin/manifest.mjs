// The manifest as upstream plugins ship it: a module whose default export is
// the manifest object (the host asks node to print it once at install time).
const manifest = {
  id: "paperclip.js-sandbox-compat",
  apiVersion: 1,
  version: "0.1.0",
  displayName: "JS Sandbox (compat)",
  description: "Fake-sandbox semantics implemented on @paperclipai/plugin-sdk.",
  author: "Paperclip",
  categories: ["automation"],
  capabilities: ["environment.drivers.register"],
  entrypoints: { worker: "./worker.mjs" },
  environmentDrivers: [
    {
      driverKey: "js-fake",
      kind: "sandbox_provider",
      displayName: "JS Fake Sandbox",
      description: "Temporary directories on the host; commands run without a shell.",
      supportsReusableLeases: true,
      configSchema: {
        type: "object",
        properties: {
          image: { type: "string", default: "fake:latest" },
          timeoutMs: { type: "number", default: 300000 },
          reuseLease: { type: "boolean", default: false },
        },
      },
    },
  ],
};
export default manifest;
