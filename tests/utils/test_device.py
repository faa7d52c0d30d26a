

def test_prepare_gsplat_is_a_no_op_on_the_cpu():
    from thgs.utils.device import prepare_gsplat

    assert prepare_gsplat("cpu") is False
