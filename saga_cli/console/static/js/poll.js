// Polling that never overlaps itself: the next request is scheduled once the previous one
// has been answered (and drawn), so a slow database slows the page instead of piling up.
// `refresh` may return how long to wait next, in milliseconds.

export function poll(refresh, intervalMs) {
  let timer = null;
  let stopped = false;
  let running = false;
  let again = false;
  async function tick() {
    running = true;
    let next = intervalMs;
    try {
      const wanted = await refresh();
      if (typeof wanted === "number") next = wanted;
    } catch (err) {
      console.warn("refresh failed", err); // `refresh` shows its own errors on the page
    }
    running = false;
    if (stopped) return;
    if (again) {
      again = false;
      next = 0;
    }
    timer = setTimeout(tick, next);
  }
  tick();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    // Refresh now (after an action), or right after the refresh already under way.
    now() {
      if (running) {
        again = true;
        return;
      }
      clearTimeout(timer);
      tick();
    },
  };
}
