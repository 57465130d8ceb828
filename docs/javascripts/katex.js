// Typesets the formulas pymdownx.arithmatex (generic mode) leaves in the page: each is a
// .arithmatex element holding \( ... \) (inline) or \[ ... \] (display). KaTeX is the copy
// in docs/vendor/katex/, so formulas render offline too; without it the TeX stays readable.
document$.subscribe(() => {
  if (typeof katex === "undefined") return;
  for (const element of document.querySelectorAll(".arithmatex")) {
    const tex = element.textContent.trim();
    const display = tex.startsWith("\\[");
    katex.render(tex.slice(2, -2), element, { displayMode: display, throwOnError: false });
  }
});
