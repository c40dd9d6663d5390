// Vite build of the ordertrace UI. No framework plugin: Lit needs none.
// The gateway serves dist/ under /ui/ with a strict CSP (script-src 'self'; style-src 'self'), so
// the build must emit only external scripts and stylesheets: no module-preload polyfill (it is an
// inline script), hashed names under assets/ (cached forever by the gateway).
// Dev: `npm run dev` proxies /api, /auth and /jaeger to OT_GATEWAY (default http://127.0.0.1:8080).
import { defineConfig } from 'vite';

const gateway = process.env.OT_GATEWAY ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/ui/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
  },
  server: {
    proxy: {
      '/api': { target: gateway, changeOrigin: false },
      '/auth': { target: gateway, changeOrigin: false },
      '/jaeger': { target: gateway, changeOrigin: false },
    },
  },
});
