mod common;
use common::*;

rt_test!(
    submit_and_await,
    |b: workerpoolxt::Builder| async move {
        let pool = b.max_workers(4).build();
        let hs: Vec<_> = (0..100u32).map(|i| pool.submit(async move { i })).collect();
        let mut sum = 0;
        for h in hs {
            sum += h.await.unwrap();
        }
        assert_eq!(sum, 4950);
        pool.stop_wait().await;
    },
    async_std
);
