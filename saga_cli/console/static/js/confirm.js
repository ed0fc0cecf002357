// A confirmation asked in the page's own <dialog> (a state change is never one click).

export function confirmAction({ title, text, ok }) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const okButton = document.getElementById("confirm-ok");
  const cancelButton = document.getElementById("confirm-cancel");
  okButton.textContent = ok;
  return new Promise((resolve) => {
    const done = (value) => {
      okButton.removeEventListener("click", onOk);
      cancelButton.removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      dialog.close();
      resolve(value);
    };
    const onOk = () => done(true);
    const onCancel = (event) => {
      event.preventDefault();
      done(false);
    };
    okButton.addEventListener("click", onOk);
    cancelButton.addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel); // Escape
    dialog.showModal();
    cancelButton.focus(); // the safe choice is the default one
  });
}
