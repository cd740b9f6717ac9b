"""Koopman autoencoders that model how a trained network's representations move through its layers

Modules:

- `koopman_nb.reproduce`: `koopman-nb reproduce`: one command that trains or reuses every model of a study and writes its numbers, figures and report
- `koopman_nb.targets`: The residual MLPs whose layer representations the Koopman autoencoders model: architecture, training recipe, checkpoints and representation capture
- `koopman_nb.topology`: Betti numbers of point clouds from a sparse ε-neighbourhood graph: single scales, Betti curves, a rule for the scale, per-class counts, and counts along the layers of a network and the iterates of its Koopman autoencoder
- `koopman_nb.unlearning`: Forget a class by editing the Koopman operator in closed form, and measure the result against retraining, fine-tuning and gradient ascent"""

__version__ = "0.1.0"
