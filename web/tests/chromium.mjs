// Launches Debian's headless Chromium (or $CHROMIUM) through playwright-core with the
// flags every browser test shares: no sandbox (CI runs as root), no GPU, no QUIC, no
// background traffic, autoplay without a gesture. `extra` adds test-specific flags,
// e.g. '--allow-loopback-in-peer-connection' or
// '--disable-features=WebRtcHideLocalIpsWithMdns' (plain IP ICE candidates, no mDNS).
import { chromium } from 'playwright-core';

export const P2P_FLAGS = [
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

export function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      ...extra,
    ],
  });
}
