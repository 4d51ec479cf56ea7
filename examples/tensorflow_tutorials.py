"""Code from the TensorFlow and Keras beginner tutorials, as written for Keras, on hubel.

- "Basic classification" (Fashion-MNIST): logits, a from_logits loss, a Softmax probability model.
- The Coursera course's callback: stop once training accuracy passes a threshold.
- "Visualizing what convnets learn" (Deep Learning with Python, 5.4): a model from the input to
  every layer's output, for the feature maps.
- Keras's "Simple MNIST convnet": one-hot labels from to_categorical.

Run: .venv/bin/python examples/tensorflow_tutorials.py   (about 30 s on two cores)
"""

import numpy as np

import hubel
from hubel import layers as L
from hubel.utils import to_categorical

hubel.utils.set_random_seed(0)
(train_images, train_labels), (test_images, test_labels) = hubel.datasets.load("fashion_mnist")
train_images, test_images = train_images[:12000] / 255.0, test_images / 255.0
train_labels = train_labels[:12000]

# Basic classification: the model outputs logits; the loss knows it
model = hubel.Sequential([L.Flatten(input_shape=(28, 28)), L.Dense(128, activation="relu"), L.Dense(10)])
model.compile(optimizer="adam", loss=hubel.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


class StopAtAccuracy(hubel.callbacks.Callback):
    """The Coursera course's callback, unchanged but for the base class."""

    def on_epoch_end(self, epoch, logs=None):
        if logs.get("accuracy") > 0.86:
            print(f"\nReached 86% accuracy after epoch {epoch + 1}, so cancelling training.")
            self.model.stop_training = True


model.fit(train_images, train_labels, epochs=10, callbacks=[StopAtAccuracy()], verbose=2)
test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=2)
print("Test accuracy:", round(test_acc, 4))
probability_model = hubel.Sequential([model, L.Softmax()])
predictions = probability_model.predict(test_images[:5])
print("Predicted:", np.argmax(predictions, axis=1).tolist(), "true:", test_labels[:5].tolist())

# A convnet, then every layer's activations for one image (Deep Learning with Python, 5.4)
convnet = hubel.Sequential(
    [
        L.Input((28, 28, 1)),
        L.Conv2D(16, (3, 3), activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Conv2D(32, (3, 3), activation="relu"),
        L.Flatten(),
        L.Dense(10, activation="softmax"),
    ]
)
# Keras's "Simple MNIST convnet": one-hot labels and categorical_crossentropy
convnet.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
convnet.fit(train_images[..., None], to_categorical(train_labels, 10), batch_size=128, epochs=2, verbose=2)
layer_outputs = [layer.output for layer in convnet.layers[:3]]
activation_model = hubel.Model(inputs=convnet.input, outputs=layer_outputs)
activations = activation_model.predict(test_images[:1, ..., None])
for layer, activation in zip(convnet.layers, activations):
    print(f"{layer.name}: {activation.shape}, {int((activation[0] > 0).mean() * 100)}% of the values active")
print("Trainable weights:", len(convnet.trainable_weights), "- first kernel:", convnet.weights[0].shape)
