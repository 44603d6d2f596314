// MathJax 3 configuration, read by assets/mathjax/tex-mml-chtml.js (a local copy made by
// docs/hooks.py from the django-static-mathjax package: nothing loads from the internet).
// Written pages carry pymdownx.arithmatex's <span class="arithmatex">\( \)</span>; the tutorials'
// markdown cells carry $...$ and $$...$$. Everything else is left alone.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|jupyter-wrapper",
  },
};
