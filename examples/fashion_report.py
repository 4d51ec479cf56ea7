"""Train the tutorial's Fashion-MNIST network (the zoo's fashion_cnn) for two epochs, then
write the pictures and the HTML report into runs/fashion/ (about a minute on 2 CPU cores).

Run: .venv/bin/python examples/fashion_report.py
"""

from pathlib import Path

import hubel
from hubel import inspect

out = Path("runs/fashion")
hubel.set_seed(0)
(x_train, y_train), (x_test, y_test) = hubel.datasets.load("fashion_mnist")
names = hubel.datasets.info("fashion_mnist").class_names

model = hubel.models.zoo.create_model("fashion_cnn")  # the tutorial network, taking raw pixels
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=2, batch_size=64, validation_split=0.1)

inspect.show_images(x_train, y_train, names, n=10, path=out / "samples.png")
inspect.plot_history(history, path=out / "curves.png")
inspect.show_filters(model, path=out / "filters.png")
inspect.show_feature_maps(model, x_test[0], "conv2d_1", path=out / "feature_maps.png")
inspect.show_kernel(x_test[:4], "vertical_edge", path=out / "vertical_edge.png")
inspect.show_grad_cam(model, x_test[0], class_names=names, path=out / "grad_cam.png")
probabilities = model.predict(x_test)
inspect.plot_confusion_matrix(inspect.confusion_matrix(y_test, probabilities), names, path=out / "confusion.png")
path = inspect.report(
    model,
    history,
    (x_test, y_test),
    path=out / "report.html",
    class_names=names,
    title="Fashion-MNIST, fashion_cnn",
    seed=0,
)
print(f"Report: {path}")
