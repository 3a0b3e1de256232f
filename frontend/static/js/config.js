// The runtime config comes from the backend at /config.json (the same files run in every environment).
// Until it arrives nothing else can work, so a failure shows the retrying notice and tries again.

import { clearConnectionProblem, showConnectionProblem } from './chrome.js';

const RETRY_MS = 2000;

async function fetchConfig() {
  const response = await fetch('/config.json', { cache: 'no-store', credentials: 'omit' });
  if (!response.ok) throw new Error(`config.json answered ${response.status}`);
  const config = await response.json();
  if (typeof config.api_base !== 'string' || !Number.isFinite(config.poll_interval_ms)) {
    throw new Error('config.json is incomplete');
  }
  return config;
}

export async function loadConfig() {
  for (;;) {
    try {
      const config = await fetchConfig();
      clearConnectionProblem();
      return config;
    } catch {
      let wake;
      const slept = new Promise((resolve) => {
        wake = resolve;
        setTimeout(resolve, RETRY_MS);
      });
      showConnectionProblem('Cannot reach the MV-OS backend.', RETRY_MS, () => wake());
      await slept;
    }
  }
}
