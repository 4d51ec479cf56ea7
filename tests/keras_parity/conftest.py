# keras_side.py runs in .venv-keras (Keras and TensorFlow), not in hubel's venv: never import it here.
collect_ignore = ["keras_side.py"]
