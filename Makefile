.PHONY: demo test bench

demo:  ## install and start the demo (JupyterLab on the embedded default)
	scripts/demo.sh

test:  ## install what the tests need and run every test
	scripts/test.sh

bench:  ## run the benchmarks (see benchmarks/README.md)
	scripts/setup-env.sh test
	.venv/bin/python benchmarks/crawl.py
	.venv/bin/python benchmarks/search.py
	.venv/bin/python benchmarks/startup.py
	.venv/bin/python benchmarks/mlflow.py
	.venv/bin/python benchmarks/pull.py
	.venv/bin/python benchmarks/notebook.py
	.venv/bin/python benchmarks/sidebar.py
	.venv/bin/python benchmarks/publish.py
	.venv/bin/python benchmarks/demo.py
