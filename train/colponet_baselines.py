"""The non-learned baselines of ColpoNet and the bootstrap intervals its evaluation reports, shared by the training
run (`train_colponet --baselines`, written into `eval_results.json` for the card) and `benchmarks.colponet_accuracy`.

- the class prior: the training split's class frequencies as every photo's probabilities (its accuracy is the
  majority class's share);
- classical colour and texture features (colour moments in RGB, HSV and Lab, hue and saturation histograms,
  gradient-magnitude and local-binary-pattern histograms, the Laplacian variance) with a logistic regression fitted
  on the training split (its regularisation chosen by 5-fold cross-validation on the training split alone).

Intervals are 95% percentile bootstraps over photos; a baseline's difference from the model is bootstrapped with
the same resampled photos for both (paired), and the model beats it when that interval excludes 0.
"""

import cv2
import numpy as np

from cervix_hf.io.images import load_image

FEATURE_SIDE = 256


def per_photo(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each photo is classified right, and its log loss (probabilities clipped to [1e-15, 1])."""
    correct = probabilities.argmax(1) == labels
    loss = -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-15, 1.0))
    return correct.astype(float), loss


def bootstrap(values: dict[str, np.ndarray], resamples: int, seed: int = 0) -> dict[str, list[float]]:
    """95% percentile-bootstrap intervals of the mean of each array, all resampled with the same photo indices."""
    rng = np.random.default_rng(seed)
    size = len(next(iter(values.values())))
    indices = rng.integers(0, size, size=(resamples, size))
    return {name: np.percentile(v[indices].mean(1), [2.5, 97.5]).tolist() for name, v in values.items()}


def recalls(probabilities: np.ndarray, labels: np.ndarray, names: list[str], resamples: int) -> dict:
    out = {}
    for k, name in enumerate(names):
        hits = (probabilities.argmax(1) == labels)[labels == k].astype(float)
        out[name] = {"recall": float(hits.mean()), "n": int(len(hits)), "ci": bootstrap({"r": hits}, resamples)["r"]}
    return out


def colour_texture_features(path: str) -> np.ndarray:
    """Colour moments (RGB, HSV, Lab), hue and saturation histograms, gradient-magnitude and uniform LBP
    histograms, and the Laplacian variance of one photo at 256x256."""
    rgb = np.asarray(load_image(path).resize((FEATURE_SIDE, FEATURE_SIDE)), dtype=np.uint8)
    features = []
    for space in (None, cv2.COLOR_RGB2HSV, cv2.COLOR_RGB2LAB):
        pixels = (rgb if space is None else cv2.cvtColor(rgb, space)).reshape(-1, 3).astype(np.float64)
        mean, std = pixels.mean(0), pixels.std(0) + 1e-6
        features += [mean, std, (((pixels - mean) / std) ** 3).mean(0)]
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    features.append(np.histogram(hsv[..., 0], bins=12, range=(0, 180), density=True)[0] * 180 / 12)
    features.append(np.histogram(hsv[..., 1], bins=8, range=(0, 256), density=True)[0] * 256 / 8)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    magnitude = np.hypot(cv2.Sobel(gray, cv2.CV_64F, 1, 0), cv2.Sobel(gray, cv2.CV_64F, 0, 1))
    features.append(np.histogram(np.log1p(magnitude), bins=10, range=(0, 8), density=True)[0] * 0.8)
    features.append(_lbp_histogram(gray))
    features.append([np.log1p(cv2.Laplacian(gray, cv2.CV_64F).var())])
    return np.concatenate([np.ravel(f) for f in features])


def _lbp_histogram(gray: np.ndarray) -> np.ndarray:
    """Histogram of the 8-neighbour local binary pattern, uniform patterns by their count of set bits (0-8) and
    the non-uniform ones in a tenth bin (Ojala et al., 2002)."""
    centre = gray[1:-1, 1:-1]
    shifts = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    bits = np.stack(
        [gray[1 + dy : gray.shape[0] - 1 + dy, 1 + dx : gray.shape[1] - 1 + dx] >= centre for dy, dx in shifts]
    )
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(0)
    codes = np.where(transitions <= 2, bits.sum(0), 9)
    return np.bincount(codes.ravel(), minlength=10) / codes.size


def class_prior(train_labels, num_classes: int, num_photos: int) -> np.ndarray:
    """The training split's class frequencies, as the probabilities of each of `num_photos` photos."""
    prior = np.bincount(np.asarray(train_labels), minlength=num_classes) / len(train_labels)
    return np.tile(prior, (num_photos, 1))


def classical_baseline(train_paths, train_labels, eval_paths) -> np.ndarray:
    """Class probabilities of `eval_paths` from colour and texture features with a logistic regression fitted on
    the training photos."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_features = np.stack([colour_texture_features(p) for p in train_paths])
    eval_features = np.stack([colour_texture_features(p) for p in eval_paths])
    classifier = make_pipeline(
        StandardScaler(), LogisticRegressionCV(Cs=10, cv=5, scoring="neg_log_loss", max_iter=5000)
    )
    classifier.fit(train_features, np.asarray(train_labels))
    return classifier.predict_proba(eval_features)


def figures(probabilities: np.ndarray, labels, names: list[str], resamples: int = 2000) -> dict:
    """Accuracy, log loss and per-class recall, each with its 95% bootstrap interval."""
    labels = np.asarray(labels)
    correct, loss = per_photo(probabilities, labels)
    intervals = bootstrap({"accuracy": correct, "log_loss": loss}, resamples)
    return {
        "n": int(len(labels)),
        "accuracy": float(correct.mean()),
        "accuracy_ci": intervals["accuracy"],
        "log_loss": float(loss.mean()),
        "log_loss_ci": intervals["log_loss"],
        "recall": recalls(probabilities, labels, names, resamples),
    }


def compare(model: np.ndarray, baseline: np.ndarray, labels, names: list[str], resamples: int = 2000) -> dict:
    """A baseline's figures, and the model's difference from it (model minus baseline) with paired intervals;
    `beaten` when the model is better on both accuracy and log loss by more than the interval."""
    labels = np.asarray(labels)
    model_correct, model_loss = per_photo(model, labels)
    correct, loss = per_photo(baseline, labels)
    intervals = bootstrap({"accuracy": model_correct - correct, "log_loss": model_loss - loss}, resamples)
    difference = {
        "accuracy": float((model_correct - correct).mean()),
        "accuracy_ci": intervals["accuracy"],
        "log_loss": float((model_loss - loss).mean()),
        "log_loss_ci": intervals["log_loss"],
    }
    beaten = intervals["accuracy"][0] > 0 and intervals["log_loss"][1] < 0
    return {**figures(baseline, labels, names, resamples), "model_minus_baseline": difference, "beaten": beaten}
