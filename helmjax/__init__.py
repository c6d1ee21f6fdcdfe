"""helmjax: measure how much of a dataset is noise by training on perceptually compressed copies of it."""

__version__ = "0.1.0"
