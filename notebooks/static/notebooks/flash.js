/**
 * The messages a page shows after a form (e.g. "Source added."): each gets a Dismiss button, and
 * a success goes away by itself. On the notebook page they float over the workspace, where one
 * that stayed would cover what is under it until the next page load.
 */

const SUCCESS_SHOWN_MS = 6000;

for (const flash of document.querySelectorAll(".flash")) {
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.className = "flash-dismiss";
  dismiss.setAttribute("aria-label", "Dismiss");
  dismiss.textContent = "×";
  dismiss.addEventListener("click", () => flash.remove());
  flash.append(dismiss);
  if (flash.classList.contains("flash-success")) {
    // Not while the pointer or the keyboard is on it: someone is reading it.
    const hide = () => (flash.matches(":hover, :focus-within") ? setTimeout(hide, 1000) : flash.remove());
    setTimeout(hide, SUCCESS_SHOWN_MS);
  }
}
