// Runs `task` every `intervalMs`, one run at a time (a slow answer never stacks requests).  While the backend
// is unreachable or failing (network error, 5xx), it backs off a little and reports through `onProblem`;
// the first good run after that calls `onRecovered`.

import { isTransient } from './api.js';

export class Poller {
  constructor(task, intervalMs, { onProblem, onRecovered, onFatal }) {
    this.task = task;
    this.intervalMs = intervalMs;
    this.onProblem = onProblem;
    this.onRecovered = onRecovered;
    this.onFatal = onFatal;
    this.failures = 0;
    this.timer = null;
    this.running = false;
    this.stopped = true;
    this.again = false;
  }

  start() {
    this.stopped = false;
    this.now();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  // Poll as soon as possible (after a send, on navigation, from the "Retry now" button).
  now() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (this.running) {
      this.again = true;
      return;
    }
    this.run();
  }

  retryDelay() {
    const cap = Math.max(this.intervalMs, 5000);
    return Math.min(this.intervalMs * 2 ** Math.max(0, this.failures - 1), cap);
  }

  async run() {
    this.running = true;
    let delay = this.intervalMs;
    try {
      await this.task();
      if (this.failures > 0) this.onRecovered();
      this.failures = 0;
    } catch (err) {
      if (isTransient(err)) {
        this.failures += 1;
        delay = this.retryDelay();
        if (!this.stopped) this.onProblem(err, delay);
      } else if (this.onFatal) {
        this.onFatal(err);
      }
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    if (this.again) {
      this.again = false;
      delay = 0;
    }
    this.timer = setTimeout(() => this.run(), delay);
  }
}
