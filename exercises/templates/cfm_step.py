"""Exercise: one training step of conditional flow matching  [lecture: Flow Matching In Practice, step 4]

Grade it with:  python -m exercises grade cfm_step cfm_step.py
"""

import autograd.numpy as np  # numpy, as autograd can differentiate it
from autograd import value_and_grad


def cfm_step(v, theta, x1, rng, lr):
    """One step of gradient descent on the CFM loss of a minibatch  [lecture: Flow Matching In Practice, step 4]

    Step 4 with the linear path (Example 1, sigma = 0), for each of the n examples:

        t ~ U[0, 1],   x0 ~ N(0, I),   x_t = (1 - t) x0 + t x1,   u_cond = x1 - x0,

    then the minibatch estimate of L_CFM (Theorem 2) and one gradient step:

        L(theta) = (1/n) sum_i || v(theta, x_t_i, t_i) - u_cond_i ||^2
        theta_new = theta - lr * grad L(theta)

    Draw t (shape (n,)) and x0 (shape (n, d)) from rng at every call. Compute the loss
    with autograd.numpy and its gradient with autograd's value_and_grad.

    Graded against reference.losses.cfm_loss on the batch you drew (the grader sees
    (x_t, t) when you call v), differentiated by autograd; also checked: fresh t and x0
    at every step, t uniform on [0, 1], x0 standard normal, the same step for the same
    seed.

    Args:
        v: the model, v(theta, x, t) of shape (n, d) for x of shape (n, d) and t of
            shape (n,).
        theta: the parameters, a flat array of shape (p,). Do not modify it in place.
        x1: a minibatch of data, shape (n, d) (use every row, in order).
        rng: a numpy.random.Generator.
        lr: the learning rate (a float).

    Returns:
        (theta_new, loss): the updated parameters, shape (p,), and L(theta) (a float).
    """
    raise NotImplementedError  # TODO: your code here
