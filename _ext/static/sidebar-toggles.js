/* The sidebars' buttons on phones, tablets and desktops: a local patch for sphinx-book-theme 1.3.0
 * with pydata-sphinx-theme 0.17.x, upstream https://github.com/pydata/pydata-sphinx-theme/issues/2451
 * (open; sphinx-book-theme 1.4.0 has the same code and needs Sphinx 8.2, which Jupyter Book 1.x
 * cannot use).
 *
 * Since 0.17.0 pydata-sphinx-theme renders its own `.primary-toggle` (and `.secondary-toggle`)
 * button in its header, and sphinx-book-theme renders another in the article's header, the one a
 * reader sees. Both themes attach their click handlers with `document.querySelector`, that is to
 * the first button only: the visible one shows its tooltip and does nothing, at every width (no
 * sidebar dialog on a phone, no collapsing sidebar on a desktop). This forwards a click on any
 * later button of the same kind to the first, where the themes' handlers are. Remove it with the
 * upgrade that fixes the issue (tests/browser/test_readers_layout.py checks the behaviour).
 */
(function () {
  function forward(selector) {
    const buttons = Array.from(document.querySelectorAll(selector));
    const first = buttons[0];
    buttons.slice(1).forEach((button) => {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        event.stopPropagation();
        button.blur(); // drop the tooltip, as sphinx-book-theme does for the first button
        first.click();
      });
    });
  }
  function setup() {
    forward(".primary-toggle");
    forward(".secondary-toggle");
  }
  if (document.readyState !== "loading") setup();
  else document.addEventListener("DOMContentLoaded", setup);
})();
