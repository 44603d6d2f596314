// MathJax 3 configuration, read by assets/mathjax/tex-mml-chtml.js (a local copy made by
// docs/hooks.py from the django-static-mathjax package: nothing loads from the internet).
// Written pages carry pymdownx.arithmatex's <span class="arithmatex">\( \)</span> and MathJax
// looks nowhere else; tutorials (a .jupyter-wrapper, rendered by mkdocs-jupyter) write $...$ and
// $$...$$ in their markdown cells, so there MathJax searches the page (code and outputs excepted).
(function () {
  const notebook = document.querySelector(".jupyter-wrapper") !== null;
  window.MathJax = {
    tex: {
      inlineMath: notebook ? [["$", "$"], ["\\(", "\\)"]] : [["\\(", "\\)"]],
      displayMath: notebook ? [["$$", "$$"], ["\\[", "\\]"]] : [["\\[", "\\]"]],
      processEscapes: true,
      processEnvironments: true,
    },
    options: notebook
      ? { ignoreHtmlClass: "tex2jax_ignore|md-header|md-footer|md-sidebar", processHtmlClass: "tex2jax_process" }
      : { ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex" },
  };
})();
