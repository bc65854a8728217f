// The live board: Server-Sent Events refresh the board's content without a reload; the
// browser resumes a lost stream with Last-Event-ID, and the page says so.
(() => {
  "use strict";
  const board = document.querySelector("[data-board]");
  if (!board) return;
  const state = document.getElementById("connection");
  const updated = document.getElementById("updated");
  const content = document.getElementById("board-content");
  let lost = false;
  let refreshing = Promise.resolve();

  function say(kind, text) { state.dataset.state = kind; state.textContent = text; }
  function stamp() {
    const now = new Date();
    updated.dateTime = now.toISOString();
    updated.textContent = now.toLocaleTimeString("nb-NO", { timeZone: "Europe/Oslo" });
  }
  function refresh() {
    refreshing = refreshing.then(async () => {
      const answer = await fetch(board.dataset.content, { credentials: "same-origin" });
      if (answer.redirected || !answer.ok) { say("lost", "Du er logget ut. Last siden på nytt."); return; }
      const keep = document.activeElement && document.activeElement.id;
      content.innerHTML = await answer.text();
      if (keep && document.getElementById(keep)) document.getElementById(keep).focus();
      stamp();
    }).catch(() => {});
    return refreshing;
  }

  const source = new EventSource(board.dataset.stream, { withCredentials: true });
  source.addEventListener("hello", (event) => {
    const hello = JSON.parse(event.data);
    if (hello.resumed || lost) {
      say("resumed", "Tilkoblet igjen – hentet det som skjedde mens forbindelsen var borte.");
      refresh();
    } else {
      say("live", "Direkteoppdatering er på.");
    }
    lost = false;
  });
  source.addEventListener("alert", refresh);
  source.addEventListener("scores", refresh);
  source.onerror = () => { lost = true; say("lost", "Forbindelsen er brutt – prøver igjen …"); };

  content.addEventListener("submit", async (event) => {
    const form = event.target.closest("form[data-action]");
    if (!form) return;
    event.preventDefault();
    const answer = await fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" },
    });
    if (!answer.ok) say(state.dataset.state, "Handlingen ble ikke utført (svar " + answer.status + ").");
    await refresh();
  });
})();
