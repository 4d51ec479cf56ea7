"""The Keras MNIST tutorial, on hubel: load, build, summary, fit, evaluate, save, reload.

Run: .venv/bin/python examples/mnist_tutorial.py   (this is what `make demo` runs)
"""

import numpy as np

import hubel
from hubel import layers as L

hubel.set_seed(1)
(x_train, y_train), (x_test, y_test) = hubel.datasets.load("mnist")
class_names = hubel.datasets.info("mnist").class_names

model = hubel.Sequential(
    [
        L.Input(shape=(28, 28, 1)),
        L.Rescaling(1 / 255),  # the model takes raw 0-255 pixels, so predict() on new images needs no preprocessing
        L.Conv2D(32, (3, 3), activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Conv2D(64, (3, 3), activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Flatten(),
        L.Dropout(0.25),
        L.Dense(10, activation="softmax"),
    ]
)
model.summary()
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=1, batch_size=64, validation_split=0.1)
test_loss, test_accuracy = model.evaluate(x_test, y_test)
print(f"Test accuracy: {test_accuracy:.4f}")

path = model.save("runs/demo/mnist.hubel", metadata={"class_names": list(class_names)})
reloaded = hubel.load_model(path)
probabilities = reloaded.predict(x_test[:5])
print("First test digits:", y_test[:5].tolist(), "predicted:", probabilities.argmax(axis=1).tolist())
assert np.array_equal(probabilities, model.predict(x_test[:5])), "a reloaded model must answer the same"
print(f"Saved {path}")
