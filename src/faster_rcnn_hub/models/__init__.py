"""The model code: one folder per model, each exactly the files a converted Hub repository carries."""
